"""Tensor factories with PyTorch's names: ``tensor``, ``zeros``, ``ones``, ``arange``...

>>> import convscope as cs
>>> cs.zeros(2, 3).shape
(2, 3)
>>> cs.arange(4).tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _dtypes
from .tensor import Tensor, _shape_arg


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays or tensors)."""
    if isinstance(data, Tensor):
        data = data.data
    target = np.dtype(dtype) if dtype is not None else _dtypes.infer_dtype(data)
    return Tensor(np.array(data, dtype=target, copy=True), requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor(array)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """``data`` as a tensor, without copying when it already is one of the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor(data)
    return tensor(data, dtype=dtype)


def _filled(size: tuple[Any, ...], value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
    return Tensor(np.full(_shape_arg(size), value, dtype=dtype), requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(size, 0, dtype, requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(size, 1, dtype, requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(size, 0, dtype, requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = _dtypes.infer_dtype(fill_value)
    return _filled((size,), fill_value, dtype, requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = _dtypes.infer_dtype([start, end, step])
    return Tensor(np.arange(start, end, step, dtype=dtype))
