"""safetensors files: a flat mapping of names to tensors, readable by every framework.

Layout (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length ``N``,
``N`` bytes of JSON ``{"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [2, 3],
"data_offsets": [BEGIN, END]}, ...}`` (padded with spaces to a multiple of 8 bytes), then the
data: each tensor's little-endian C-order bytes at ``BEGIN:END`` of what follows the header.
As in the reference implementation, the ranges of the tensors must tile the data exactly: sorted
by offset, each starts where the previous one ends, the first at 0 and the last at the end of
the file, and each is as long as its dtype and shape need.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..tensor import Tensor
from ._common import (
    Budget,
    CheckpointError,
    FileLike,
    array_of,
    checked_shape,
    decode,
    nbytes,
    opened,
    raw_bytes,
    read_exact,
    reading,
)

# safetensors dtype codes, in the reference implementation's order (increasing alignment)
_CODES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
}
_WRITE = {dtype: code for code, dtype in _CODES.items() if code != "BF16"}
_RANK = {code: rank for rank, code in enumerate(_CODES)}
_MAX_HEADER = 100_000_000  # the reference implementation's limit


def save_safetensors(
    tensors: Mapping[str, Tensor | np.ndarray],
    f: FileLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (names to tensors or NumPy arrays) and ``metadata`` to a safetensors file.

    dtypes: bool, uint8...uint64, int8...int64, float16, float32, float64 (``TypeError`` for
    others).  The bytes are those the reference ``safetensors`` writer produces: tensors sorted
    by decreasing alignment then name, header padded with spaces to 8 bytes.

    >>> import os, tempfile
    >>> import convscope as cs
    >>> from convscope.io import load_safetensors, save_safetensors
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "model.safetensors")
    >>> save_safetensors({"weight": cs.ones(2, 3), "step": cs.tensor(5)}, path, {"epoch": "3"})
    >>> load_safetensors(path)
    {'step': tensor(5), 'weight': tensor([[1., 1., 1.],
            [1., 1., 1.]])}
    >>> tmp.cleanup()
    """
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("safetensors metadata maps strings to strings")
    header: dict[str, Any] = {} if metadata is None else {"__metadata__": meta}
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise TypeError(f"invalid safetensors tensor name {name!r}")
        array = array_of(value)
        if array.dtype.name not in _WRITE:
            raise TypeError(f"safetensors has no dtype for {array.dtype} (tensor {name!r})")
        entries.append((_WRITE[array.dtype.name], name, array))
    entries.sort(key=lambda entry: (-_RANK[entry[0]], entry[1]))
    offset = 0
    for code, name, array in entries:
        header[name] = {
            "dtype": code,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with opened(f, "wb") as stream:
        stream.write(struct.pack("<Q", len(text)) + text)
        for _, _, array in entries:
            stream.write(raw_bytes(array))


def load_safetensors(f: FileLike) -> dict[str, Tensor]:
    """Read a safetensors file into a dict of ``Tensor`` (in the order of its header).

    dtypes: bool, uint8...uint64, int8...int64, float16, float32, float64, and **BF16, loaded as
    float32** (exactly: NumPy has no bfloat16, and a bfloat16 is the top 16 bits of a float32).
    Other dtypes (float8...), corrupt or truncated files raise
    :class:`convscope.io.CheckpointError` naming the file and the problem, and so do data
    ranges that overlap, leave gaps, run past the file or do not match their dtype and shape:
    as in the reference implementation, the ranges must tile the data exactly, so loading never
    allocates more than the file holds (plus bfloat16's widening to float32).

    >>> import io, struct
    >>> from convscope.io import load_safetensors
    >>> header = b'{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    >>> data = struct.pack("<Q", len(header)) + header + bytes([0x80, 0x3F, 0x40, 0xC0])
    >>> load_safetensors(io.BytesIO(data))
    {'x': tensor([ 1., -3.])}
    """
    with reading(f, "safetensors file"), opened(f, "rb") as stream:
        start = stream.tell()
        total = stream.seek(0, 2) - start
        stream.seek(start)
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise CheckpointError("too short for a safetensors header (truncated?)")
        (size,) = struct.unpack("<Q", prefix)
        if size > _MAX_HEADER:
            raise CheckpointError(f"header length {size} is too large (not a safetensors file?)")
        text = stream.read(size)
        if len(text) != size:
            raise CheckpointError(f"header of {size} bytes cut short at {len(text)} (truncated)")
        header = json.loads(text.decode("utf-8"))
        if not isinstance(header, dict):
            raise CheckpointError("the header is not a JSON object")
        header.pop("__metadata__", None)
        entries = [_entry(name, info, total - 8 - size) for name, info in header.items()]
        _check_tiling(entries, total - 8 - size)
        budget = Budget(total)
        tensors = {}
        for name, dtype, shape, (begin, end) in sorted(entries, key=lambda e: e[3]):
            raw = read_exact(stream, end - begin)
            tensors[name] = Tensor(decode(raw, dtype, budget=budget).reshape(shape))
        return {name: tensors[name] for name in header}


def _entry(name: str, info: Any, available: int) -> tuple[str, str, tuple[int, ...], list[int]]:
    """(name, dtype, shape, data offsets) of one header entry, each checked."""
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise CheckpointError(f"tensor {name!r}: no dtype, shape and data_offsets")
    code, offsets = info["dtype"], info["data_offsets"]
    if not isinstance(code, str) or code not in _CODES:
        raise CheckpointError(f"tensor {name!r}: unsupported dtype {str(code)[:40]!r}")
    valid = isinstance(offsets, list) and len(offsets) == 2
    if not (valid and all(type(n) is int for n in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(f"tensor {name!r}: invalid data offsets {str(offsets)[:80]}")
    try:
        shape = checked_shape(info["shape"])
    except CheckpointError as error:
        raise CheckpointError(f"tensor {name!r}: {error}") from None
    dtype, (begin, end) = _CODES[code], offsets
    expected = nbytes(dtype, shape)
    found = min(end, available) - begin if begin <= available else 0
    if found != expected:
        raise CheckpointError(
            f"tensor {name!r}: expected {expected} bytes of {dtype} data for shape {shape}, "
            f"found {found} (truncated or corrupt)"
        )
    return name, dtype, shape, offsets


def _check_tiling(entries: list[tuple[str, str, tuple[int, ...], list[int]]], size: int) -> None:
    """The data offsets, sorted, must cover ``0:size`` once: no overlap, no gap."""
    position, previous = 0, None
    for name, _, _, (begin, end) in sorted(entries, key=lambda e: e[3]):
        if begin < position:
            raise CheckpointError(f"tensor {name!r} overlaps tensor {previous!r} in the data")
        if begin > position:
            raise CheckpointError(f"{begin - position} unused bytes before tensor {name!r}")
        position, previous = end, name
    if position != size:
        raise CheckpointError(f"{size - position} bytes after the last tensor's data")
