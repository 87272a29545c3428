"""What the three file formats share: errors, file handling, dtypes, raw array bytes and limits.

Every format stores arrays as raw bytes in C order; dtypes are named as NumPy and PyTorch name
them (``"float32"``, ``"int64"``, ``"bool"``...), plus ``"bfloat16"`` when reading.

Loading is bounded by the size of the file, so that a small crafted file can neither exhaust
memory nor take hours: :class:`Budget` bounds the bytes of array data a load allocates,
:class:`KeyGuard` the dict keys sharing one hash, :data:`MAX_DEPTH` the nesting of containers.
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

#: Containers (lists, tuples, dicts, sets) nested deeper than this are refused: Python hashes,
#: compares and prints nested containers recursively, and crashes on deep enough ones.
MAX_DEPTH = 1000

#: More keys than this in one dict or set sharing one hash value are refused (see KeyGuard).
MAX_SHARED_HASH = 32

_MAX_DIMS = 64  # NumPy's limit on the number of dimensions
_CHUNK = 1 << 22  # bytes read at a time from a zip member


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


def file_size(f: FileLike) -> int:
    """The size in bytes of a path or a seekable file object (from its current position)."""
    if isinstance(f, str | os.PathLike):
        return os.path.getsize(f)
    position = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(position)
    return end - position


@contextmanager
def opened(f: FileLike, mode: str) -> Iterator[IO[bytes]]:
    """A binary file: ``f`` opened when it is a path, ``f`` itself (left open) otherwise."""
    if isinstance(f, str | os.PathLike):
        with open(f, mode) as stream:
            yield stream
    else:
        yield f


def _describe(error: BaseException) -> str:
    try:  # formatting a message can itself fail (a key too deep to print, an int too long)
        text = str(error)
    except Exception:
        text = "?"
    return text if len(text) <= 300 else text[:300] + "..."


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
    except RecursionError as error:
        raise CheckpointError(
            f"{name}: {what} nested too deeply to load (more than Python's recursion limit)"
        ) from error
    except Exception as error:
        raise CheckpointError(
            f"{name}: corrupt or truncated {what} ({type(error).__name__}: {_describe(error)})"
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


class Budget:
    """The bytes of array data one load may allocate: ``max(64 MiB, 16 x the file's size)``.

    Every allocation a load makes for array data is charged: bytes read from the file (after
    decompression), copies of tensor views, dtype and byte-order conversions.  A well-formed
    file needs about its own size; a crafted one (a zip bomb, one small storage viewed or
    referenced many times) is refused with a :class:`CheckpointError` when it would cross the
    limit.  Metadata (a pickle or JSON index) may take at most ``max(1 MiB, file size)``
    bytes once decompressed.

    >>> budget = Budget(1000)
    >>> budget.limit == 64 * 2**20, budget.fits(2**20)
    (True, True)
    >>> budget.charge(2**30, "tensor 'w'")
    Traceback (most recent call last):
    ...
    convscope.io.CheckpointError: tensor 'w' needs 1073741824 bytes, more than a file of 1000 \
bytes may allocate (67108864 bytes: 16 x its size, at least 64 MiB)
    """

    def __init__(self, size: int):
        self.size = size
        self.limit = max(64 << 20, 16 * size)
        self.metadata_limit = max(1 << 20, size)
        self.used = 0

    def fits(self, nbytes: int) -> bool:
        return self.used + nbytes <= self.limit

    def charge(self, nbytes: int, what: str) -> None:
        if not self.fits(nbytes):
            raise CheckpointError(
                f"{what} needs {nbytes} bytes, more than a file of {self.size} bytes may "
                f"allocate ({self.limit} bytes: 16 x its size, at least 64 MiB)"
            )
        self.used += nbytes


class KeyGuard:
    """Counts the keys of one dict or set by hash, refusing more than MAX_SHARED_HASH per hash.

    Inserting ``n`` keys that share a hash takes time ``n**2`` in a Python dict or set, and
    numbers (and tuples of numbers) have predictable hashes: ``k * (2**61 - 1)`` hash to 0 for
    every integer ``k``, so a file of 100 000 such keys would take minutes to load.  Strings and
    bytes have randomised hashes and are not counted.

    >>> guard = KeyGuard()
    >>> for k in range(40):
    ...     guard.add(k * (2**61 - 1))
    Traceback (most recent call last):
    ...
    convscope.io.CheckpointError: more than 32 keys of one dict or set share a hash value \
(crafted to make loading take quadratic time?)
    """

    def __init__(self, keys: Any = ()):
        self._counts: dict[int, int] = {}
        for key in keys:
            self.add(key)

    def add(self, key: Any) -> None:
        if type(key) is str or type(key) is bytes:
            return
        # an int below 2**61 - 1 hashes to itself: the counts cannot collide in turn
        value = hash(key) & ((1 << 61) - 1)
        count = self._counts.get(value, 0) + 1
        if count > MAX_SHARED_HASH:
            raise CheckpointError(
                f"more than {MAX_SHARED_HASH} keys of one dict or set share a hash value "
                "(crafted to make loading take quadratic time?)"
            )
        self._counts[value] = count


def member(archive: zipfile.ZipFile, name: str, what: str = "member") -> zipfile.ZipInfo:
    """The entry ``name`` of ``archive``, or a :class:`CheckpointError` saying it is missing."""
    info = archive.NameToInfo.get(name)
    if info is None:
        raise CheckpointError(f"missing {what} {name}")
    return info


def _check_member(info: zipfile.ZipInfo) -> None:
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile unpacks bzip2 and lzma without an output bound: a few KB could take GBs
        raise CheckpointError(
            f"{info.filename}: compression method {info.compress_type} is not supported "
            "(only stored or deflated members)"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise CheckpointError(
            f"{info.filename}: stored with {info.compress_size} bytes but declares "
            f"{info.file_size} (corrupt)"
        )


def read_metadata(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> bytes:
    """The bytes of a pickle or JSON member, at most ``budget.metadata_limit`` of them."""
    if info.file_size > budget.metadata_limit:
        raise CheckpointError(
            f"{info.filename} unpacks to {info.file_size} bytes, more than a file of "
            f"{budget.size} bytes may hold (a zip bomb?)"
        )
    return read_member(archive, info, budget).tobytes()


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> np.ndarray:
    """The bytes of member ``info`` in a new writable ``uint8`` array, charged to ``budget``.

    Read in chunks (each unpacked with a bound on its size, whatever the member claims), so
    that the only allocation is the array itself.
    """
    _check_member(info)
    size = info.file_size
    budget.charge(size, info.filename)
    out = np.empty(size, np.uint8)
    with archive.open(info) as stream:
        position = 0
        while position < size:
            chunk = stream.read(min(_CHUNK, size - position))
            if not chunk:
                raise CheckpointError(f"{info.filename} is cut short at {position} bytes")
            out[position : position + len(chunk)] = np.frombuffer(chunk, np.uint8)
            position += len(chunk)
    return out


def read_exact(stream: IO[bytes], size: int) -> np.ndarray:
    """The next ``size`` bytes of ``stream`` in a new writable ``uint8`` array."""
    out = np.empty(size, np.uint8)
    view = memoryview(out)
    readinto = getattr(stream, "readinto", None)
    position = 0
    while position < size:
        if readinto is not None:
            count = readinto(view[position:]) or 0
        else:
            chunk = stream.read(min(_CHUNK, size - position))
            count = len(chunk)
            out[position : position + count] = np.frombuffer(chunk, np.uint8)
        if not count:
            raise CheckpointError(f"data cut short at {position} of {size} bytes (truncated)")
        position += count
    return out


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


def itemsize(dtype: str) -> int:
    """Bytes per stored value of ``dtype`` (a CheckpointError for unsupported dtypes)."""
    return _stored(dtype).itemsize


def _stored(dtype: Any, byteorder: str = "little") -> np.dtype:
    if dtype != "bfloat16" and dtype not in DTYPES:
        raise CheckpointError(f"unsupported dtype {dtype!r}")
    stored = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return stored.newbyteorder("<" if byteorder == "little" else ">")


def checked_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple, if it is a list or tuple of at most 64 non-negative ints."""
    valid = isinstance(shape, list | tuple) and len(shape) <= _MAX_DIMS
    if not (valid and all(type(n) is int and n >= 0 for n in shape)):
        text = repr(shape)
        raise CheckpointError(f"invalid shape {text if len(text) < 100 else text[:100] + '...'}")
    return tuple(shape)


def nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    """The bytes of data an array of ``dtype`` and ``shape`` is stored in."""
    return math.prod(shape) * itemsize(dtype)


def decode(
    raw: np.ndarray, dtype: str, byteorder: str = "little", budget: Budget | None = None
) -> np.ndarray:
    """A flat, writable, native-order array of the values in ``raw`` (a uint8 array).

    A view of ``raw`` when it is writable and already in native order; otherwise a converted
    copy, charged to ``budget``.  bfloat16 becomes float32, exactly: a bfloat16 is the top 16
    bits of a float32.
    """
    stored = _stored(dtype, byteorder)
    if raw.size % stored.itemsize:
        raise CheckpointError(f"{raw.size} bytes is not a whole number of {dtype} values")
    array = raw.view(stored)
    native = stored.newbyteorder("=")
    convert = dtype == "bfloat16" or not stored.isnative or not raw.flags.writeable
    if convert and budget is not None:
        budget.charge(array.size * (4 if dtype == "bfloat16" else native.itemsize), dtype)
    if dtype == "bfloat16":
        wide = array.astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32)
    return array.astype(native) if convert else array
