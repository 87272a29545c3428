"""``load_torch``: read files written by ``torch.save`` without torch and without running them.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the saved object, whose
tensors refer to storages by key), ``<name>/data/<key>`` (each storage's raw bytes),
``<name>/byteorder`` and ``<name>/version``.  The pickle is read by a restricted unpickler:
``find_class`` only resolves the globals in :data:`ALLOWED_GLOBALS` (tensor and parameter
rebuilders, storage classes, dtypes, ``OrderedDict``, ``torch.Size`` and a few builtin
containers), each mapped to a small function of this module; any other global, and any
``BUILD`` (state setting) other than the ``_metadata`` torch attaches to state dicts, raises
:class:`convscope.io.UnsafeCheckpointError` before it can do anything.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..nn.parameter import Parameter
from ..tensor import Tensor
from ._common import (
    DTYPES,
    CheckpointError,
    FileLike,
    UnsafeCheckpointError,
    decode,
    open_zip,
    reading,
)

_STORAGE_DTYPES = {  # torch's storage classes and the dtype of their elements
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",  # bytes; the tensor record then names the dtype
}


class _StorageType(NamedTuple):
    dtype: str


class _Storage(NamedTuple):
    """One storage record of the archive, as the tensor records that use it see it."""

    raw: bytes
    dtype: str
    byteorder: str
    decoded: dict[str, np.ndarray]  # flat arrays by dtype, shared by every view of the record


def _strided(flat: np.ndarray, offset: Any, size: Any, stride: Any) -> np.ndarray:
    """A copy of the view ``(offset, size, stride)`` (in elements) of ``flat``, bounds checked."""
    valid = (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(type(n) is int and n >= 0 for n in (offset, *size, *stride))
    )
    if not valid:
        raise CheckpointError(
            f"invalid tensor geometry: offset {offset}, size {size}, stride {stride}"
        )
    if 0 in size:
        return np.zeros(size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= flat.size:
        raise CheckpointError(
            f"a tensor of size {size}, stride {stride} at offset {offset} runs past the end of "
            f"its storage of {flat.size} elements"
        )
    strides = [s * flat.itemsize for s in stride]
    view = np.lib.stride_tricks.as_strided(flat[offset:], size, strides, writeable=False)
    if math.prod(size) > flat.size:
        # more elements than the storage holds (an expand()ed or overlapping view): keep the
        # read-only view, never a hidden copy many times the file's size
        return view
    return view.copy()


def _tensor(
    storage: Any, dtype: str, offset: Any, size: Any, stride: Any, requires_grad: Any, metadata: Any
) -> Tensor:
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor record without a storage")
    if dtype not in storage.decoded:
        storage.decoded[dtype] = decode(storage.raw, dtype, storage.byteorder)
    array = _strided(storage.decoded[dtype], offset, size, stride)
    for flag, value in (metadata or {}).items():
        if flag not in ("conj", "neg"):
            raise CheckpointError(f"unsupported tensor metadata {flag!r}")
        if value and not array.flags.writeable:
            raise CheckpointError(
                f"a {flag} flag on an expanded view of {array.size} elements would need a copy "
                f"far larger than its storage of {storage.decoded[dtype].size} elements"
            )
        if value:
            array = np.conj(array) if flag == "conj" else -array
    return Tensor(array, requires_grad=requires_grad is True)


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> Tensor:
    return _tensor(
        storage, getattr(storage, "dtype", None), offset, size, stride, requires_grad, metadata
    )


def _rebuild_tensor_v3(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> Tensor:
    if not isinstance(dtype, np.dtype):
        raise CheckpointError(f"invalid tensor dtype {dtype!r}")
    return _tensor(storage, dtype.name, offset, size, stride, requires_grad, metadata)


def _rebuild_parameter(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None
) -> Parameter:
    if not isinstance(data, Tensor):
        raise CheckpointError("a parameter record without a tensor")
    return Parameter(data.data, requires_grad=requires_grad is True)


def _encode_bytes(text: Any, encoding: Any) -> bytes:
    """``_codecs.encode``, as protocol-2 pickles use it for ``bytes``: latin-1 only."""
    if not (isinstance(text, str) and encoding == "latin1"):
        raise UnsafeCheckpointError("'_codecs.encode' is only allowed to rebuild bytes")
    return text.encode("latin1")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _encode_bytes,
    ("torch.storage", "UntypedStorage"): _StorageType("uint8"),
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
    # dtype objects (torch.float32...) load as NumPy dtypes; torch.bfloat16 as float32
    **{("torch", name): np.dtype(name) for name in DTYPES},
    ("torch", "bfloat16"): np.dtype("float32"),
}


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, with globals, persistent ids and ``BUILD`` restricted.

    The pure-Python class is used because its opcode table can be overridden (``BUILD``).
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
        self._storages: dict[tuple[str, str], _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"refusing to load '{module}.{name}': only tensors, numbers, strings and plain "
                "containers can be loaded (nothing from the file was run)"
            )
        return ALLOWED_GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> _Storage:
        match pid:
            case ("storage", _StorageType(dtype=dtype), str(key), _, int(numel)):
                pass
            case _:
                raise UnsafeCheckpointError(f"unsupported persistent id {str(pid)[:80]!r}")
        if (key, dtype) not in self._storages:
            member = f"{self._prefix}data/{key}"
            if member not in self._archive.NameToInfo:
                raise CheckpointError(f"missing storage record {member}")
            raw = self._archive.read(member)
            expected = numel * (2 if dtype == "bfloat16" else np.dtype(dtype).itemsize)
            if len(raw) != expected:
                raise CheckpointError(
                    f"storage {member} has {len(raw)} bytes, expected {expected} "
                    "(truncated or corrupt)"
                )
            self._storages[key, dtype] = _Storage(raw, dtype, self._byteorder, {})
        return self._storages[key, dtype]

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not (
            type(target) is OrderedDict
            and type(state) is dict
            and all(type(k) is str for k in state)
        ):
            raise UnsafeCheckpointError(
                f"refusing to set the state of a {type(target).__name__} object"
            )
        vars(target).update(state)  # torch's state dicts carry `_metadata` this way

    dispatch[pickle.BUILD[0]] = _load_build


def load_torch(f: FileLike) -> Any:
    """Load a file written by ``torch.save`` (zip format, torch >= 1.6) without torch.

    Nothing in the file is executed: the pickle is read by a restricted unpickler that only
    rebuilds tensors, parameters and plain containers (dict, ``OrderedDict`` with its
    ``_metadata``, list, tuple, set, ``torch.Size`` as tuple, numbers, strings, bytes, None).
    Tensors become ``Tensor`` (``nn.Parameter`` stays a ``Parameter``) holding their own copy of
    the data: views (transposes, slices, storage offsets) are materialised, and tensors that
    shared a storage no longer share memory.  dtypes: float16/32/64, complex64/128, int8...int64,
    uint8...uint64 and bool keep their dtype; **bfloat16 loads as float32**, exactly (NumPy has
    no bfloat16; a bfloat16 is the top 16 bits of a float32), and ``torch.bfloat16`` dtype
    values load as ``numpy.float32``.

    Any other global (``os.system``, ``builtins.eval``, custom classes, quantized or sparse
    tensors...) raises :class:`convscope.io.UnsafeCheckpointError` (a ``CheckpointError`` and a
    ``pickle.UnpicklingError``) naming it.  Legacy (non-zip) files, corrupt or truncated files
    raise :class:`convscope.io.CheckpointError` naming the file and the problem.

    With PyTorch, ``torch.save(model.state_dict(), "model.pt")``, then without it::

        model.load_state_dict(cs.load_torch("model.pt"))

    >>> import io
    >>> import convscope as cs
    >>> legacy = io.BytesIO(b"\\x80\\x02\\x8a\\x0al\\xfc\\x9cF\\xf9 j\\xa8P\\x19.")
    >>> try:
    ...     cs.load_torch(legacy)
    ... except cs.io.CheckpointError as error:
    ...     print(error)
    <BytesIO>: a legacy (non-zip) torch.save file: not supported; re-save it with torch.save
    """
    with reading(f, "torch.save file"), open_zip(f) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError("not a torch.save archive (no <name>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in archive.NameToInfo:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii")
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"unknown byte order {byteorder!r}")
        return _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, byteorder).load()
