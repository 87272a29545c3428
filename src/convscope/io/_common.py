"""What the three file formats share: errors, file handling, dtypes and raw array bytes.

Every format stores arrays as raw bytes in C order; dtypes are named as NumPy and PyTorch name
them (``"float32"``, ``"int64"``, ``"bool"``...), plus ``"bfloat16"`` when reading.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from ..tensor import Tensor

FileLike = str | os.PathLike | IO[bytes]

#: dtypes that can be written and read (``numpy.dtype.name``); bfloat16 is read-only.
DTYPES = frozenset(
    {"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
    | {"float16", "float32", "float64", "complex64", "complex128"}
)


class CheckpointError(RuntimeError):
    """A file cannot be loaded: corrupt, truncated, unsupported or not a checkpoint."""

    __module__ = "convscope.io"


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A pickle asks for something other than tensors and plain containers; nothing was run."""

    __module__ = "convscope.io"


def source_name(f: FileLike) -> str:
    """The name of a path or file object, for error messages."""
    if isinstance(f, str | os.PathLike):
        return os.fspath(f)
    return str(getattr(f, "name", f"<{type(f).__name__}>"))


@contextmanager
def opened(f: FileLike, mode: str) -> Iterator[IO[bytes]]:
    """A binary file: ``f`` opened when it is a path, ``f`` itself (left open) otherwise."""
    if isinstance(f, str | os.PathLike):
        with open(f, mode) as stream:
            yield stream
    else:
        yield f


@contextmanager
def reading(f: FileLike, what: str) -> Iterator[None]:
    """Turn every failure while reading ``f`` into a :class:`CheckpointError` naming the file.

    A missing or unreadable file keeps its own ``OSError``.
    """
    name = source_name(f)
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except CheckpointError as error:
        raise type(error)(f"{name}: {error}") from error.__cause__
    except Exception as error:
        raise CheckpointError(
            f"{name}: corrupt or truncated {what} ({type(error).__name__}: {error})"
        ) from error


def open_zip(f: FileLike) -> zipfile.ZipFile:
    """``f`` as a zip archive, or a :class:`CheckpointError` saying what it is instead."""
    try:
        return zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        pass
    with opened(f, "rb") as stream:
        stream.seek(0)
        pickled = stream.read(1) == b"\x80"  # a bare pickle: torch.save's pre-1.6 format
    raise CheckpointError(
        "a legacy (non-zip) torch.save file: not supported; re-save it with torch.save"
        if pickled
        else "not a zip archive (truncated or corrupt?)"
    )


def array_of(value: Any) -> np.ndarray:
    """The NumPy array behind a tensor, array or array scalar, checking its dtype is storable."""
    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype.name not in DTYPES:
        raise TypeError(f"cannot save arrays of dtype {array.dtype}")
    return array


def raw_bytes(array: np.ndarray) -> np.ndarray:
    """``array``'s values as little-endian C-order bytes (a flat uint8 view when possible)."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return little.reshape(-1).view(np.uint8)


def _stored(dtype: str, byteorder: str = "little") -> np.dtype:
    if dtype != "bfloat16" and dtype not in DTYPES:
        raise CheckpointError(f"unsupported dtype {dtype!r}")
    stored = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return stored.newbyteorder("<" if byteorder == "little" else ">")


def decode(raw: bytes, dtype: str, byteorder: str = "little") -> np.ndarray:
    """A flat, writable, native-order array of ``raw``'s values.

    bfloat16 becomes float32, exactly: a bfloat16 is the top 16 bits of a float32.
    """
    stored = _stored(dtype, byteorder)
    if len(raw) % stored.itemsize:
        raise CheckpointError(f"{len(raw)} bytes is not a whole number of {dtype} values")
    array = np.frombuffer(raw, stored).astype(stored.newbyteorder("="))
    if dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def decode_array(raw: bytes, dtype: str, shape: Any) -> np.ndarray:
    """``raw`` as an array of ``shape``; the byte count must match exactly."""
    if not isinstance(shape, list | tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise CheckpointError(f"invalid shape {shape!r}")
    expected = math.prod(shape) * _stored(dtype).itemsize
    if len(raw) != expected:
        raise CheckpointError(
            f"expected {expected} bytes of {dtype} data for shape {tuple(shape)}, "
            f"found {len(raw)} (truncated or corrupt)"
        )
    return decode(raw, dtype).reshape(shape)
