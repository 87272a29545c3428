"""Top-level tensor functions with PyTorch's names (``cs.cat``, ``cs.flatten``, ``cs.where``...),
differentiable where PyTorch's are; each is a thin front to the autograd operations.

>>> import convscope as cs
>>> a, b = cs.ones(2, 3), cs.zeros(2, 3)
>>> cs.cat([a, b], dim=1).shape, cs.stack([a, b]).shape
((2, 6), (2, 2, 3))
>>> cs.flatten(cs.zeros(2, 3, 4), 1).shape
(2, 12)
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .autograd import functions as _fn
from .autograd.engine import attach
from .tensor import Tensor


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


def _dim(dim: int, ndim: int) -> int:
    bound = builtins.max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but "
            f"got {dim})"
        )
    return dim % bound


def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension (shapes must agree elsewhere).

    >>> import convscope as cs
    >>> cs.cat([cs.tensor([1, 2]), cs.tensor([3])]).tolist()
    [1, 2, 3]
    """
    parts = [_tensor(t) for t in tensors]
    if not parts:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    ndim = parts[0].ndim
    axis = _dim(dim, ndim)
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
    _dim(dim, parts[0].ndim + 1)
    return _fn.stack(parts, dim)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one.

    >>> import convscope as cs
    >>> cs.flatten(cs.zeros(2, 3, 4), start_dim=1).shape
    (2, 12)
    """
    x = _tensor(input)
    start, end = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return x.flatten(start, end)


def add(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """``input + alpha * other`` with broadcasting.

    >>> import convscope as cs
    >>> cs.add(cs.tensor([1.0, 2.0]), cs.tensor([1.0]), alpha=2).tolist()
    [3.0, 4.0]
    """
    x = _tensor(input)
    return x + (other if alpha == 1 else other * alpha)


def sub(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    x = _tensor(input)
    return x - (other if alpha == 1 else other * alpha)


def mul(input: Any, other: Any) -> Tensor:
    """Elementwise product with broadcasting."""
    return _tensor(input) * other


def div(input: Any, other: Any) -> Tensor:
    """True division with broadcasting."""
    return _tensor(input) / other


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product (batched, 1-D operands as in NumPy)."""
    return _fn.matmul(_tensor(input), other)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition``, else ``other`` (tensors or scalars, broadcast).

    >>> import convscope as cs
    >>> x = cs.tensor([-1.0, 2.0])
    >>> cs.where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
    dtype = _fn.result_dtype(getattr(input, "data", input), getattr(other, "data", other))
    a = input if isinstance(input, Tensor) else np.asarray(input, dtype)
    b = other if isinstance(other, Tensor) else np.asarray(other, dtype)
    out = _fn.where(getattr(condition, "data", condition), a, b)
    return out if out.dtype == dtype else out.to(dtype)


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
        out = where(out < min, min, out)
    if max is not None:
        out = where(out > max, max, out)
    return out


clip = clamp


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The largest value; along ``dim`` the ``(values, indices)`` pair; with a tensor as
    second argument the elementwise maximum (as ``torch.max``).

    >>> import convscope as cs
    >>> cs.max(cs.tensor([[1, 5], [7, 2]]), dim=1).indices.tolist()
    [1, 0]
    """
    x = _tensor(input)
    if isinstance(dim, Tensor):
        return where(x >= dim, x, dim)
    return x.max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The smallest value; along ``dim`` ``(values, indices)``; elementwise with a tensor."""
    x = _tensor(input)
    if isinstance(dim, Tensor):
        return where(x <= dim, x, dim)
    return x.min(dim, keepdim)


def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise maximum."""
    return max(_tensor(input), _tensor(other))


def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise minimum."""
    return min(_tensor(input), _tensor(other))


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (flat when ``dim`` is ``None``).

    >>> import convscope as cs
    >>> cs.argmax(cs.tensor([[1, 5], [7, 2]]), dim=0).tolist()
    [1, 0]
    """
    return _tensor(input).argmax(dim, keepdim)


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (flat when ``dim`` is ``None``)."""
    x = _tensor(input)
    if dim is None:
        return Tensor(np.asarray(x.data.argmin()))
    out = x.data.argmin(axis=_dim(dim, x.ndim))
    return Tensor(np.expand_dims(out, dim) if keepdim else out)


def sum(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _tensor(input).sum(dim, keepdim)


def mean(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _tensor(input).mean(dim, keepdim)


def var(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:  # fmt: skip
    return _tensor(input).var(dim, unbiased, keepdim, correction)


def std(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:  # fmt: skip
    """Standard deviation (Bessel-corrected unless ``unbiased=False`` / ``correction=0``).

    >>> import convscope as cs
    >>> round(cs.std(cs.tensor([1.0, 3.0])).item(), 6)
    1.414214
    """
    return _tensor(input).var(dim, unbiased, keepdim, correction).sqrt()


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


def split(tensor: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes.

    >>> import convscope as cs
    >>> [t.tolist() for t in cs.split(cs.arange(5), 2)]
    [[0, 1], [2, 3], [4]]
    """
    x = _tensor(tensor)
    axis = _dim(dim, x.ndim)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and length != 0):
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got {size}")
        sizes = [size] * (length // size) + ([length % size] if length % size else [])
        sizes = sizes or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {length} (input tensor's "
                f"size at dimension {axis}), but got split_sizes={sizes}"
            )
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(x[index])
        start += size
    return tuple(pieces)


def chunk(input: Any, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """``chunks`` pieces of ``ceil(size / chunks)`` along ``dim`` (possibly fewer pieces).

    >>> import convscope as cs
    >>> [t.shape for t in cs.chunk(cs.zeros(5, 2), 3)]
    [(2, 2), (2, 2), (1, 2)]
    """
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    x = _tensor(input)
    length = x.shape[_dim(dim, x.ndim)]
    return split(x, builtins.max(1, math.ceil(length / chunks)) if length else 0, dim)


def einsum(equation: str, *operands: Any) -> Tensor:
    """NumPy's ``einsum`` with gradients: each operand's is another einsum.

    >>> import convscope as cs
    >>> cs.einsum("ij,jk->ik", cs.ones(2, 3), cs.ones(3, 4)).shape
    (2, 4)
    """
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    tensors = [_tensor(t) for t in operands]
    spec = equation.replace(" ", "")
    if "->" not in spec:
        inputs = spec.split(",")
        letters = sorted(c for c in set("".join(inputs)) if "".join(inputs).count(c) == 1)
        spec = f"{spec}->{''.join(letters)}"
    if "." in spec:
        raise NotImplementedError("convscope's einsum does not take ellipses ('...') yet")
    inputs, output = spec.split("->")
    terms = inputs.split(",")
    arrays = [t.data for t in tensors]
    out = np.einsum(spec, *arrays, optimize=len(arrays) > 2)

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        grads = []
        for i, (need, term) in enumerate(zip(needs, terms, strict=True)):
            if not need:
                grads.append(None)
                continue
            others = [terms[j] for j in range(len(terms)) if j != i]
            arrays_i = [arrays[j] for j in range(len(terms)) if j != i]
            grad = np.einsum(f"{','.join([output, *others])}->{term}", g, *arrays_i)
            grads.append(np.broadcast_to(grad, arrays[i].shape))
        return tuple(grads)

    return attach(Tensor(np.asarray(out)), tuple(tensors), rule, "Einsum")
