"""Argument helpers shared by the functional modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...autograd.engine import is_grad_enabled
from ...tensor import Tensor
from .conv import _TORCH_TYPE_NAMES, _array, _as_tensor


def _type_name(dtype: np.dtype) -> str:
    return _TORCH_TYPE_NAMES.get(np.dtype(dtype).name, str(dtype))


def _tensor_arg(value: Any, name: str, op: str) -> Tensor:
    """A ``Tensor`` or NumPy array as a tensor (no copy); ``TypeError`` for anything else."""
    _array(value, name, op)
    return _as_tensor(value)


def _dim(dim: int, ndim: int) -> int:
    """``dim`` in ``[-ndim, ndim)`` as a non-negative index, else PyTorch's ``IndexError``."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but "
            f"got {dim})"
        )
    return dim % bound


def _require_float(x: Tensor, op: str) -> None:
    if x.dtype.kind != "f":
        raise NotImplementedError(f"\"{op}\" not implemented for '{_type_name(x.dtype)}'")


def _check_broadcast(a: Sequence[int], b: Sequence[int]) -> None:
    """PyTorch's ``RuntimeError`` unless shapes ``a`` and ``b`` broadcast together."""
    ndim = max(len(a), len(b))
    pa, pb = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    for dim, (x, y) in enumerate(zip(pa, pb, strict=True)):
        if x != y and 1 not in (x, y):
            raise RuntimeError(
                f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                f"non-singleton dimension {dim}"
            )


def _inplace(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """``inplace=True`` writes the result into ``input`` and returns it, as PyTorch does.

    A tensor that is part of an autograd graph keeps its values (the graph recorded them):
    the result is returned out of place; a leaf requiring grad is refused like PyTorch does.
    """
    if not inplace:
        return out
    if input.requires_grad and input.is_leaf and is_grad_enabled():
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    if out.requires_grad:
        return out
    input.data[...] = out.data
    return input
