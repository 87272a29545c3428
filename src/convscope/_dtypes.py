"""Dtype names and the rules that pick a dtype, as PyTorch does.

``cs.float32`` and friends are plain NumPy dtypes, so they compare equal to ``array.dtype``.
"""

from __future__ import annotations

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool = np.dtype(np.bool_)

_default_float = float32


def get_default_dtype() -> np.dtype:
    """The dtype of tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(dtype) -> None:
    """Set the dtype used for Python floats and new layers (float32 or float64)."""
    global _default_float
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"only floating-point types are supported as the default type, got {dtype}")
    _default_float = dtype


def infer_dtype(data) -> np.dtype:
    """The dtype ``torch.tensor(data)`` would choose for Python data (arrays keep theirs)."""
    if isinstance(data, np.ndarray | np.generic):
        return data.dtype
    kind = np.asarray(data).dtype.kind
    if kind == "b":
        return bool
    if kind in "iu":
        return int64
    if kind == "f":
        return _default_float
    if kind == "c":
        return np.dtype(np.complex64)
    raise TypeError(f"could not infer a tensor dtype from data of type {type(data).__name__}")
