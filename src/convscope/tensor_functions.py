"""Top-level tensor functions with PyTorch's names (``cs.cat``, ``cs.flatten``, ``cs.where``...),
differentiable where PyTorch's are; each checks its arguments as PyTorch does and hands the
work to a tensor method or an operation of :mod:`convscope.autograd.functions`.

>>> import convscope as cs
>>> a, b = cs.ones(2, 3), cs.zeros(2, 3)
>>> cs.cat([a, b], dim=1).shape, cs.stack([a, b]).shape
((2, 6), (2, 2, 3))
>>> cs.flatten(cs.zeros(2, 3, 4), 1).shape
(2, 12)
>>> cs.softmax(cs.tensor([1.0, 1.0]), dim=0)
tensor([0.5000, 0.5000])
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dtypes
from . import random as _random
from .autograd import functions as _fn
from .tensor import ReductionResult, Tensor

_check_dim = _fn.check_dim


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


# ---------------------------------------------------------------- joining and splitting
def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension (shapes must agree elsewhere; dtypes promote).

    >>> import convscope as cs
    >>> cs.cat([cs.tensor([1, 2]), cs.tensor([3])]).tolist()
    [1, 2, 3]
    """
    parts = [_tensor(t) for t in tensors]
    if not parts:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, part in enumerate(parts):
        if part.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    if any(p.ndim != 1 for p in parts):  # PyTorch still skips 1-D empty tensors here
        parts = [p for p in parts if p.shape != (0,)] or parts[:1]
    ndim = parts[0].ndim
    axis = _check_dim(dim, ndim)
    for i, part in enumerate(parts[1:], 1):
        if part.ndim != ndim:
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {ndim} and {part.ndim}"
            )
        for d in range(ndim):
            if d != axis and part.shape[d] != parts[0].shape[d]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {axis}. Expected size "
                    f"{parts[0].shape[d]} but got size {part.shape[d]} for tensor number {i} "
                    "in the list."
                )
    return _fn.cat(parts, axis)


concat = concatenate = cat


def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join equally shaped tensors along a new dimension.

    >>> import convscope as cs
    >>> cs.stack([cs.tensor([1, 2]), cs.tensor([3, 4])], dim=1).tolist()
    [[1, 3], [2, 4]]
    """
    parts = [_tensor(t) for t in tensors]
    if not parts:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, part in enumerate(parts[1:], 1):
        if part.shape != parts[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(parts[0].shape)} at "
                f"entry 0 and {list(part.shape)} at entry {i}"
            )
    return _fn.stack(parts, _check_dim(dim, parts[0].ndim + 1))


def split(tensor: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes.

    >>> import convscope as cs
    >>> [t.tolist() for t in cs.split(cs.arange(5), 2)]
    [[0, 1], [2, 3], [4]]
    """
    x = _tensor(tensor)
    if x.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    axis = _check_dim(dim, x.ndim)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, int | np.integer):
        size, name = int(split_size_or_sections), "Split"
        if size < 0:
            raise RuntimeError(
                f"split expects split_size be non-negative, but got split_size={size}"
            )
        if size == 0 and length != 0:
            raise RuntimeError(
                "split_size can only be 0 if dimension size is 0, but got dimension size of "
                f"{length}"
            )
        sizes = [size] * (length // size) + ([length % size] if length % size else [])
        sizes = sizes or [0]
    else:
        sizes, name = [int(s) for s in split_size_or_sections], "SplitWithSizes"
        if builtins.sum(sizes) != length or builtins.min(sizes, default=0) < 0:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {length} (input tensor's "
                f"size at dimension {axis}), but got split_sizes={sizes}"
            )
    pieces, start, lead = [], 0, (slice(None),) * axis
    for size in sizes:
        pieces.append(_fn.getitem(x, (*lead, slice(start, start + size)), name))
        start += size
    return tuple(pieces)


def chunk(input: Any, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``ceil(size / chunks)`` along ``dim`` (so possibly fewer than ``chunks``).

    >>> import convscope as cs
    >>> [t.shape for t in cs.chunk(cs.zeros(5, 2), 3)]
    [(2, 2), (2, 2), (1, 2)]
    """
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    x = _tensor(input)
    if x.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    length = x.shape[_check_dim(dim, x.ndim)]
    if length == 0:
        return split(x, [0] * chunks, dim)
    return split(x, -(-length // chunks), dim)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one.

    >>> import convscope as cs
    >>> cs.flatten(cs.zeros(2, 3, 4), start_dim=1).shape
    (2, 12)
    """
    return _tensor(input).flatten(start_dim, end_dim)


def permute(input: Any, dims: Sequence[int]) -> Tensor:
    return _tensor(input).permute(tuple(dims))


def transpose(input: Any, dim0: int, dim1: int) -> Tensor:
    return _tensor(input).transpose(dim0, dim1)


def reshape(input: Any, shape: Sequence[int]) -> Tensor:
    return _tensor(input).reshape(tuple(shape))


def squeeze(input: Any, dim: Any = None) -> Tensor:
    return _tensor(input).squeeze(dim)


def unsqueeze(input: Any, dim: int) -> Tensor:
    return _tensor(input).unsqueeze(dim)


def numel(input: Any) -> int:
    return _tensor(input).numel()


# ---------------------------------------------------------------- arithmetic
def add(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """``input + alpha * other`` with broadcasting.

    >>> import convscope as cs
    >>> cs.add(cs.tensor([1.0, 2.0]), cs.tensor([1.0]), alpha=2).tolist()
    [3.0, 4.0]
    """
    return _fn.add(_tensor(input), other, alpha)


def sub(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    return _fn.sub(_tensor(input), other, alpha=alpha)


subtract = sub


def mul(input: Any, other: Any) -> Tensor:
    """Elementwise product with broadcasting."""
    return _fn.mul(_tensor(input), other)


multiply = mul


def div(input: Any, other: Any, rounding_mode: str | None = None) -> Tensor:
    """True division with broadcasting (or ``'trunc'``/``'floor'`` rounded)."""
    return _tensor(input).div(other, rounding_mode=rounding_mode)


divide = div


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product (batched, 1-D operands as in NumPy)."""
    return _fn.matmul(_tensor(input), other)


def pow(input: Any, exponent: Any) -> Tensor:
    if not isinstance(input, Tensor):
        return _fn.rpow(input, exponent)
    return _fn.pow(input, exponent)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition``, else ``other`` (tensors or scalars, broadcast).

    >>> import convscope as cs
    >>> x = cs.tensor([-1.0, 2.0])
    >>> cs.where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
    if isinstance(condition, Tensor) and condition.dtype != _dtypes.bool:
        raise RuntimeError(
            "where expected condition to be a boolean tensor, but got a tensor with dtype "
            f"{_fn._dtype_name(condition.dtype)}"
        )
    return _fn.where(condition, input, other)


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to ``[min, max]`` (numbers or tensors; either may be ``None``).

    >>> import convscope as cs
    >>> cs.clamp(cs.tensor([-2.0, 0.5, 3.0]), min=0.0, max=1.0).tolist()
    [0.0, 0.5, 1.0]
    """
    x = _tensor(input)
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        return _fn.clamp(x, min, max)
    out = x
    if min is not None:
        out = _fn.where(out < min, min, out)
    if max is not None:
        out = _fn.where(out > max, max, out)
    return out


clip = clamp


# ---------------------------------------------------------------- elementwise functions
def abs(input: Any) -> Tensor:
    return _fn.abs(_tensor(input))


def neg(input: Any) -> Tensor:
    return _fn.neg(_tensor(input))


negative = neg


def exp(input: Any) -> Tensor:
    return _fn.exp(_tensor(input))


def log(input: Any) -> Tensor:
    return _fn.log(_tensor(input))


def sqrt(input: Any) -> Tensor:
    return _fn.sqrt(_tensor(input))


def tanh(input: Any) -> Tensor:
    return _fn.tanh(_tensor(input))


def sigmoid(input: Any) -> Tensor:
    return _fn.sigmoid(_tensor(input))


def relu(input: Any) -> Tensor:
    return _fn.relu(_tensor(input))


def sign(input: Any) -> Tensor:
    return _fn.sign(_tensor(input))


def floor(input: Any) -> Tensor:
    return _fn.floor(_tensor(input))


def round(input: Any, decimals: int = 0) -> Tensor:
    return _fn.round(_tensor(input), decimals)


def _float_input(x: Tensor, dtype: Any, kernel: str) -> Tensor:
    if dtype is not None:
        return x.to(dtype)
    if x.dtype.kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_fn._dtype_name(x.dtype)}'")
    return x


def softmax(input: Any, dim: int, dtype: Any = None) -> Tensor:
    """``exp(x) / exp(x).sum(dim)``, computed stably."""
    x = _float_input(_tensor(input), dtype, "softmax_lastdim_kernel_impl")
    return _fn.softmax(x, dim)


def log_softmax(input: Any, dim: int, dtype: Any = None) -> Tensor:
    x = _float_input(_tensor(input), dtype, "log_softmax_lastdim_kernel_impl")
    return _fn.log_softmax(x, dim)


# ---------------------------------------------------------------- reductions and orderings
def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The largest value; along ``dim`` the ``(values, indices)`` pair; with a tensor as
    second argument the elementwise maximum (as ``torch.max``).

    >>> import convscope as cs
    >>> cs.max(cs.tensor([[1, 5], [7, 2]]), dim=1).indices.tolist()
    [1, 0]
    """
    return _tensor(input).max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The smallest value; along ``dim`` ``(values, indices)``; elementwise with a tensor."""
    return _tensor(input).min(dim, keepdim)


def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise maximum (a tie sends half the gradient to each input, as in PyTorch)."""
    return _fn.maximum(_tensor(input), _tensor(other))


def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise minimum."""
    return _fn.maximum(_tensor(input), _tensor(other), largest=False)


def amax(input: Any, dim: Any = (), keepdim: bool = False) -> Tensor:
    return _tensor(input).amax(dim, keepdim)


def amin(input: Any, dim: Any = (), keepdim: bool = False) -> Tensor:
    return _tensor(input).amin(dim, keepdim)


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (of the flattened tensor when ``dim`` is ``None``).

    >>> import convscope as cs
    >>> cs.argmax(cs.tensor([[1, 5], [7, 2]]), dim=0).tolist()
    [1, 0]
    """
    return _tensor(input).argmax(dim, keepdim)


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (of the flattened tensor when ``dim`` is ``None``)."""
    return _tensor(input).argmin(dim, keepdim)


def topk(
    input: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
) -> ReductionResult:
    """The ``k`` largest (or smallest) values along ``dim`` with their indices.

    >>> import convscope as cs
    >>> cs.topk(cs.tensor([[0.1, 0.7, 0.2]]), 2).indices.tolist()
    [[1, 2]]
    """
    return _tensor(input).topk(k, dim, largest, sorted)


def sort(
    input: Any, dim: int = -1, descending: bool = False, stable: bool = False
) -> ReductionResult:
    return _tensor(input).sort(dim, descending, stable)


def argsort(input: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return _tensor(input).argsort(dim, descending, stable)


def sum(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return _tensor(input).sum(dim, keepdim, dtype=dtype)


def mean(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return _tensor(input).mean(dim, keepdim, dtype=dtype)


def var(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:  # fmt: skip
    """Variance (Bessel-corrected unless ``unbiased=False`` / another ``correction``)."""
    return _tensor(input).var(dim, unbiased, keepdim, correction)


def std(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:  # fmt: skip
    """Standard deviation (Bessel-corrected unless ``unbiased=False`` / ``correction=0``).

    >>> import convscope as cs
    >>> cs.std(cs.tensor([1.0, 3.0]))
    tensor(1.4142)
    """
    return _tensor(input).std(dim, unbiased, keepdim, correction)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation (NumPy's), with gradients: each operand's is another einsum.

    >>> import convscope as cs
    >>> cs.einsum("ij,jk->ik", cs.ones(2, 3), cs.ones(3, 4)).shape
    (2, 4)
    >>> cs.einsum("ii", cs.ones(3, 3)).item()  # the trace
    3.0
    """
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    return _fn.einsum(equation, [_tensor(t) for t in operands])


# ---------------------------------------------------------------- new tensors shaped like one
def _like(input: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    x = _tensor(input)
    return x.shape, x.dtype if dtype is None else np.dtype(dtype)


def zeros_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``input``'s shape and dtype (unless ``dtype`` is given).

    >>> import convscope as cs
    >>> cs.zeros_like(cs.tensor([[1, 2]]))
    tensor([[0, 0]])
    """
    shape, dtype = _like(input, dtype)
    return Tensor(np.zeros(shape, dtype), requires_grad=requires_grad)


def ones_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return Tensor(np.ones(shape, dtype), requires_grad=requires_grad)


def empty_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return Tensor(np.zeros(shape, dtype), requires_grad=requires_grad)


def full_like(input: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False):
    """``fill_value`` everywhere, with ``input``'s shape and dtype (unless given)."""
    shape, dtype = _like(input, dtype)
    return Tensor(np.full(shape, fill_value, dtype), requires_grad=requires_grad)


def rand_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on ``[0, 1)`` shaped like ``input``, from the global generator."""
    shape, dtype = _like(input, dtype)
    return _random.rand(*shape, dtype=dtype, requires_grad=requires_grad)


def randn_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples shaped like ``input``, from the global generator."""
    shape, dtype = _like(input, dtype)
    return _random.randn(*shape, dtype=dtype, requires_grad=requires_grad)


__all__ = [
    "abs",
    "add",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "argsort",
    "cat",
    "chunk",
    "clamp",
    "clip",
    "concat",
    "concatenate",
    "div",
    "divide",
    "einsum",
    "empty_like",
    "exp",
    "flatten",
    "floor",
    "full_like",
    "log",
    "log_softmax",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "multiply",
    "neg",
    "negative",
    "numel",
    "ones_like",
    "permute",
    "pow",
    "rand_like",
    "randn_like",
    "relu",
    "reshape",
    "round",
    "sigmoid",
    "sign",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sub",
    "subtract",
    "sum",
    "tanh",
    "topk",
    "transpose",
    "unsqueeze",
    "var",
    "where",
    "zeros_like",
]
