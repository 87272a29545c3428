"""Datasets that work offline: scikit-learn's bundled digits, and MNIST-style IDX files.

``load_digits`` reads the 8x8 digits table that ships inside scikit-learn (1,797 images of the
UCI "Optical Recognition of Handwritten Digits" set) without importing scikit-learn; install
it with ``pip install "convscope[train]"``.  ``read_idx`` reads the IDX format of MNIST and
Fashion-MNIST (optionally gzipped) from a path you give.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
>>> with open(path, "wb") as fh:
...     _ = fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
>>> read_idx(path).tolist()
[7, 2, 1]
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..tensor import Tensor

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(RuntimeError):
    """A dataset file is missing, unreadable or malformed."""


def digits_path() -> Path:
    """Where scikit-learn keeps ``digits.csv.gz`` (found without importing scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DatasetError(
            "the digits dataset ships with scikit-learn, which is not installed: "
            'pip install "convscope[train]" (or pip install scikit-learn)'
        )
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DatasetError(f"scikit-learn is installed but {path} is missing")
    return path


def load_digits() -> tuple[Tensor, Tensor]:
    """The 1,797 digits as images ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` and labels int64."""
    table = np.loadtxt(digits_path(), delimiter=",", dtype=np.float32)
    images = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    return Tensor(images), Tensor(table[:, -1].astype(np.int64))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` allowed): magic ``0 0 type ndim``, big-endian sizes, data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(f"cannot read IDX file {path}: {error}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated: header needs {header} bytes, got {len(raw)}")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(
            f"{path} has {len(raw)} bytes but its header {shape} of {dtype} needs {expected}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx_dataset(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """MNIST/Fashion-MNIST: images ``(N, 1, H, W)`` float32 in ``[0, 1]``, labels int64."""
    pixels, targets = read_idx(images), read_idx(labels)
    if pixels.ndim != 3 or targets.ndim != 1 or len(pixels) != len(targets):
        raise DatasetError(
            f"expected images (N, H, W) and labels (N,), got {pixels.shape} and {targets.shape}"
        )
    return (Tensor((pixels[:, None] / 255.0).astype(np.float32)), Tensor(targets.astype(np.int64)))


def split(count: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``range(count)``: (train indices, test indices)."""
    order = np.random.default_rng(seed).permutation(count)
    cut = round(count * (1 - test_fraction))
    return order[:cut], order[cut:]
