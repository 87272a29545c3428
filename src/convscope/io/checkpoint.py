"""``save`` / ``load``: convscope's own checkpoint format, a zip of JSON and raw array bytes.

Nothing is pickled: a file holds data only, and loading one never runs code from it.

The archive (uncompressed zip) holds ``checkpoint.json`` and one member ``arrays/<i>`` per
array, the array's values as little-endian bytes in C order.  ``checkpoint.json`` is
``{"format": "convscope.checkpoint", "version": 1, "root": NODE}`` where a NODE is

* ``null``, ``true``/``false``, an integer, a finite number or a string: that Python value;
* a JSON array: a ``list`` of nodes;
* ``{"type": "tuple", "items": [NODE, ...]}``;
* ``{"type": "dict" | "ordered_dict", "items": [[KEY, NODE], ...]}`` (in order; a KEY is a
  string, integer, number, boolean or null node);
* ``{"type": "float", "value": "nan" | "inf" | "-inf"}``;
* ``{"type": "tensor" | "parameter" | "ndarray" | "scalar", "data": "arrays/<i>",
  "dtype": "float32", "shape": [2, 3], "requires_grad": false}``: a ``Tensor``, an
  ``nn.Parameter``, a NumPy array or a NumPy scalar, with one of the dtypes bool, int8...int64,
  uint8...uint64, float16, float32, float64, complex64, complex128.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..nn.parameter import Parameter
from ..tensor import Tensor
from ._common import (
    MAX_DEPTH,
    Budget,
    CheckpointError,
    FileLike,
    KeyGuard,
    array_of,
    checked_shape,
    decode,
    file_size,
    member,
    nbytes,
    open_zip,
    raw_bytes,
    read_member,
    read_metadata,
    reading,
)

FORMAT = "convscope.checkpoint"
VERSION = 1
INDEX = "checkpoint.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same object always gives the same bytes
_KEY_TYPES = (str, int, float, type(None))


def save(obj: Any, f: FileLike) -> None:
    """Write ``obj`` (a state dict, or nested dicts/lists/tuples of tensors and numbers) to ``f``.

    ``f`` is a path or a binary file object.  ``obj`` may hold dicts (``OrderedDict`` stays
    ordered and stays an ``OrderedDict``), lists, tuples, ``None``, bools, ints, floats, strings,
    ``Tensor``/``nn.Parameter``, NumPy arrays and NumPy scalars; dict keys are strings, numbers
    or ``None``.  Anything else raises ``TypeError`` before the file is touched.  The format is
    described in :mod:`convscope.io.checkpoint`; nothing is pickled.

    >>> import os, tempfile
    >>> import convscope as cs
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "model.ckpt")
    >>> conv = cs.nn.Conv1d(2, 3, 5)
    >>> cs.save({"model": conv.state_dict(), "epoch": 7, "loss": [0.5, 0.25]}, path)
    >>> ckpt = cs.load(path)
    >>> ckpt["epoch"], ckpt["loss"], list(ckpt["model"])
    (7, [0.5, 0.25], ['weight', 'bias'])
    >>> conv.load_state_dict(ckpt["model"])
    IncompatibleKeys(missing_keys=[], unexpected_keys=[])
    >>> tmp.cleanup()
    """
    arrays: list[np.ndarray] = []
    root = _encode(obj, arrays, "obj")
    index = json.dumps({"format": FORMAT, "version": VERSION, "root": root}, allow_nan=False)
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo(INDEX, _EPOCH), index)
        for i, array in enumerate(arrays):
            archive.writestr(zipfile.ZipInfo(f"arrays/{i}", _EPOCH), raw_bytes(array))


def load(f: FileLike) -> Any:
    """Read what :func:`save` wrote to ``f`` (a path or a binary file object).

    Tensors come back as ``Tensor`` (``nn.Parameter`` as ``nn.Parameter``, with their
    ``requires_grad``), NumPy arrays and scalars as NumPy arrays and scalars, tuples as tuples
    and ``OrderedDict`` as ``OrderedDict``; arrays never share memory with each other.  A file
    that is not a complete convscope checkpoint raises :class:`convscope.io.CheckpointError`
    naming the file and the problem; so does a crafted one, before it can exhaust memory or
    time: an array member named twice (``save`` writes each once), members that unpack to more
    than ``max(64 MiB, 16 x file size)`` bytes in all (zip bombs), containers nested too deep,
    dicts with many keys sharing a hash.

    >>> import io
    >>> import convscope as cs
    >>> buffer = io.BytesIO()
    >>> cs.save({"w": cs.ones(2, 2), "b": (cs.tensor([1, 2]), None), "lr": 1e-3}, buffer)
    >>> cs.load(buffer)
    {'w': tensor([[1., 1.],
            [1., 1.]]), 'b': (tensor([1, 2]), None), 'lr': 0.001}
    >>> cs.load(io.BytesIO(buffer.getvalue()[:100]))
    Traceback (most recent call last):
    ...
    convscope.io.CheckpointError: <BytesIO>: not a zip archive (truncated or corrupt?)
    """
    with reading(f, "convscope checkpoint"):
        budget = Budget(file_size(f))
        with open_zip(f) as archive:
            names = archive.namelist()
            if INDEX not in names:
                hint = any(n.endswith("data.pkl") for n in names)
                raise CheckpointError(
                    "a PyTorch file: load it with convscope.load_torch"
                    if hint
                    else f"not a convscope checkpoint (no {INDEX})"
                )
            index = json.loads(read_metadata(archive, archive.getinfo(INDEX), budget))
            if not isinstance(index, dict) or index.get("format") != FORMAT:
                raise CheckpointError(f"not a convscope checkpoint ({INDEX} has no format tag)")
            if index.get("version") != VERSION:
                raise CheckpointError(f"unsupported checkpoint version {index.get('version')!r}")
            return _Decoder(archive, budget).decode(index["root"], 0)


def _encode(obj: Any, arrays: list[np.ndarray], where: str) -> Any:
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Tensor | np.ndarray | np.generic):  # before float: np.float64 is a float
        try:
            array = array_of(obj)
        except TypeError as error:
            raise TypeError(f"{error} (at {where})") from None
        arrays.append(array)
        return {
            "type": _array_kind(obj),
            "data": f"arrays/{len(arrays) - 1}",
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            "requires_grad": bool(getattr(obj, "requires_grad", False)),
        }
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"type": "float", "value": repr(float(obj))}
    if isinstance(obj, Mapping):
        items = []
        for key, value in obj.items():
            if not isinstance(key, _KEY_TYPES):
                raise TypeError(f"cannot save a dict key of type {type(key).__name__} (at {where})")
            items.append([_encode(key, arrays, where), _encode(value, arrays, f"{where}[{key!r}]")])
        return {"type": "ordered_dict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, list | tuple):
        nodes = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return nodes if isinstance(obj, list) else {"type": "tuple", "items": nodes}
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(
        f"cannot save an object of type {type(obj).__name__} (at {where}): checkpoints hold "
        f"dicts, lists, tuples, numbers, strings, None, tensors and NumPy arrays{hint}"
    )


def _array_kind(obj: Tensor | np.ndarray | np.generic) -> str:
    if isinstance(obj, Tensor):
        return "parameter" if isinstance(obj, Parameter) else "tensor"
    return "ndarray" if isinstance(obj, np.ndarray) else "scalar"


class _Decoder:
    """Turns the nodes of ``checkpoint.json`` back into objects, reading each array member once.

    A member named by two nodes is refused (``save`` writes each array once), so the arrays
    read never exceed the file's members; containers nested more than MAX_DEPTH deep and
    dicts with many keys sharing a hash are refused too.
    """

    def __init__(self, archive: zipfile.ZipFile, budget: Budget):
        self.archive, self.budget = archive, budget
        self.used: set[str] = set()

    def decode(self, node: Any, depth: int) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if depth >= MAX_DEPTH:
            raise CheckpointError(f"containers nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        kind = node.get("type") if isinstance(node, dict) else None
        if kind == "tuple":
            return tuple(self.decode(v, depth + 1) for v in node["items"])
        if kind in ("dict", "ordered_dict"):
            pairs = [
                (self.decode(k, depth + 1), self.decode(v, depth + 1)) for k, v in node["items"]
            ]
            if not all(isinstance(k, _KEY_TYPES) for k, _ in pairs):
                raise CheckpointError("a dict key is not a string, number or null")
            KeyGuard(k for k, _ in pairs)
            return (OrderedDict if kind == "ordered_dict" else dict)(pairs)
        if kind == "float" and node["value"] in ("nan", "inf", "-inf"):
            return float(node["value"])
        if kind in ("tensor", "parameter", "ndarray", "scalar"):
            name = node["data"]
            if not isinstance(name, str) or not name.startswith("arrays/"):
                raise CheckpointError(f"array member {str(name)[:80]!r} outside arrays/")
            try:
                array = self.array(name, node["dtype"], node["shape"])
            except CheckpointError as error:
                raise CheckpointError(f"{name}: {error}") from None
            if kind == "ndarray":
                return array
            if kind == "scalar":
                return array[()]
            cls = Parameter if kind == "parameter" else Tensor
            return cls(array, requires_grad=node.get("requires_grad") is True)
        raise CheckpointError(f"unrecognised node {str(node)[:80]!r}")

    def array(self, name: str, dtype: Any, shape: Any) -> np.ndarray:
        """The array in member ``name``, whose size must be what ``dtype`` and ``shape`` need."""
        if name in self.used:
            raise CheckpointError("used twice (save writes each array once)")
        self.used.add(name)
        info = member(self.archive, name, "array member")
        shape = checked_shape(shape)
        expected = nbytes(dtype, shape)
        if info.file_size != expected:
            raise CheckpointError(
                f"expected {expected} bytes of {dtype} data for shape {shape}, "
                f"found {info.file_size} (truncated or corrupt)"
            )
        raw = read_member(self.archive, info, self.budget)
        return decode(raw, dtype, budget=self.budget).reshape(shape)
