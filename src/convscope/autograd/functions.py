"""Differentiable operations on tensors: the forward on NumPy arrays plus a backward rule.

Each rule receives the gradient of the result and a tuple saying which parents need a
gradient, and returns one gradient (or ``None``) per parent; the engine sums gradients over
broadcast dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtypes
from ..tensor import Tensor
from .engine import attach, unbroadcast

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(values: np.ndarray) -> np.ndarray:
    """Elementwise error function: ``scipy.special.erf`` (vectorised, the ``fast`` extra)
    when installed, else ``math.erf`` element by element (exact, about 100 ns each)."""
    try:
        from scipy.special import erf as vectorised
    except ImportError:
        return _erf(values).astype(values.dtype)
    return vectorised(values).astype(values.dtype, copy=False)


def _new(data: Any, parents: Sequence[Any], rule: Any, name: str) -> Tensor:
    return attach(Tensor(np.asarray(data)), parents, rule, name)


def _data(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def result_dtype(a: Any, b: Any) -> np.dtype:
    """PyTorch's type promotion: a higher category (bool < int < float) wins; a Python scalar
    never widens a tensor of its own category."""
    values = [np.asarray(v) for v in (a, b) if not isinstance(v, bool | int | float)]
    if len(values) == 2:
        (da, db), (ca, cb) = (v.dtype for v in values), (_CATEGORY[v.dtype.kind] for v in values)
        if ca != cb:
            return da if ca > cb else db
        if (values[0].ndim == 0) != (values[1].ndim == 0):  # a 0-d tensor never widens
            return db if values[0].ndim == 0 else da
        return np.result_type(da, db)
    like = values[0].dtype
    scalar = b if isinstance(b, bool | int | float) else a
    kind = "b" if isinstance(scalar, bool) else "i" if isinstance(scalar, int) else "f"
    if _CATEGORY[kind] <= _CATEGORY[like.kind]:
        return like
    return _dtypes.get_default_dtype() if kind == "f" else _dtypes.int64


def operand(value: Any, like: np.dtype) -> Any:
    """``value`` as an array of dtype ``like`` (Python scalars included)."""
    return np.asarray(_data(value)).astype(like, copy=False)


def _operands(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    dtype = result_dtype(_data(a), _data(b))
    return operand(a, dtype), operand(b, dtype)


# ---------------------------------------------------------------- binary arithmetic
def add(a: Tensor, b: Any) -> Tensor:
    x, y = _operands(a, b)
    return _new(x + y, (a, b), lambda g, n: (g, g), "Add")


def sub(a: Tensor, b: Any, reverse: bool = False) -> Tensor:
    x, y = _operands(a, b)
    if reverse:
        return _new(y - x, (a, b), lambda g, n: (-g, g), "Sub")
    return _new(x - y, (a, b), lambda g, n: (g, -g), "Sub")


def mul(a: Tensor, b: Any) -> Tensor:
    x, y = _operands(a, b)
    return _new(
        x * y, (a, b), lambda g, n: (g * y if n[0] else None, g * x if n[1] else None), "Mul"
    )


def div(a: Any, b: Any) -> Tensor:
    """True division; integer / integer gives the default float dtype, as in PyTorch."""
    x, y = _operands(a, b)
    out = np.true_divide(x, y)
    if out.dtype == np.float64 and all(np.asarray(v).dtype.kind in "biu" for v in (x, y)):
        out = out.astype(_dtypes.get_default_dtype())
    return _new(
        out,
        (a, b),
        lambda g, n: (g / y if n[0] else None, -g * x / (y * y) if n[1] else None),
        "Div",
    )


def pow(a: Tensor, b: Any) -> Tensor:
    x, y = _data(a), operand(b, a.dtype)
    out = np.power(x, y)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        ga = None
        if n[0]:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 where y == 0
                ga = g * np.where(y == 0, 0, y * np.power(x, y - 1))
        gb = g * out * np.log(np.where(x > 0, x, 1)) if n[1] else None
        return ga, gb

    return _new(out, (a, b), rule, "Pow")


def rpow(base: Any, a: Tensor) -> Tensor:
    x, y = operand(base, a.dtype), _data(a)
    out = np.power(x, y)
    return _new(out, (a,), lambda g, n: (g * out * np.log(x),), "Pow")


def matmul(a: Any, b: Any) -> Tensor:
    x, y = _data(a), _data(b)
    # 1-D operands act as a row (left) or a column (right), as in NumPy and PyTorch
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y

    batch = np.broadcast_shapes(x2.shape[:-2], y2.shape[:-2])
    promoted_shape = (*batch, x2.shape[-2], y2.shape[-1])

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        g2 = g.reshape(promoted_shape)  # the 1-D operands' dropped dimensions, back
        ga = unbroadcast(g2 @ np.swapaxes(y2, -1, -2), x2.shape).reshape(x.shape) if n[0] else None
        gb = unbroadcast(np.swapaxes(x2, -1, -2) @ g2, y2.shape).reshape(y.shape) if n[1] else None
        return ga, gb

    return _new(np.matmul(x, y), (a, b), rule, "MatMul")


# ---------------------------------------------------------------- elementwise functions
def _unary(a: Tensor, out: np.ndarray, local: Any, name: str) -> Tensor:
    """``out = f(a)`` whose derivative ``local()`` is computed only when needed."""
    return _new(out, (a,), lambda g, n: (g * local(),), name)


def _floating(a: Tensor) -> np.ndarray:
    """The data of ``a`` as floats: integer inputs of float functions give the default dtype."""
    x = a.data
    return x.astype(_dtypes.get_default_dtype()) if x.dtype.kind in "biu" else x


def neg(a: Tensor) -> Tensor:
    return _new(-a.data, (a,), lambda g, n: (-g,), "Neg")


def exp(a: Tensor) -> Tensor:
    out = np.exp(_floating(a))
    return _unary(a, out, lambda: out, "Exp")


def log(a: Tensor) -> Tensor:
    x = _floating(a)
    return _unary(a, np.log(x), lambda: 1 / x, "Log")


def sqrt(a: Tensor) -> Tensor:
    out = np.sqrt(_floating(a))
    return _unary(a, out, lambda: 0.5 / out, "Sqrt")


def abs(a: Tensor) -> Tensor:
    return _unary(a, np.abs(a.data), lambda: np.sign(a.data), "Abs")


def clamp(a: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    x = a.data
    if x.dtype.kind in "biu" and any(isinstance(v, float) for v in (min, max)):
        x = x.astype(_dtypes.get_default_dtype())
    out = np.clip(x, min, max).astype(x.dtype)
    inside = np.ones(x.shape, dtype=bool)
    if min is not None:
        inside &= x >= min
    if max is not None:
        inside &= x <= max
    return _unary(a, out, lambda: inside, "Clamp")


def relu(a: Tensor) -> Tensor:
    return _unary(a, np.maximum(a.data, 0).astype(a.dtype), lambda: a.data > 0, "Relu")


def leaky_relu(a: Tensor, negative_slope: float = 0.01) -> Tensor:
    x = a.data
    slope = np.where(x > 0, 1, negative_slope).astype(x.dtype)
    return _unary(a, x * slope, lambda: slope, "LeakyRelu")


def sigmoid(a: Tensor) -> Tensor:
    x = _floating(a)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1 / (1 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1 + e)
    return _unary(a, out, lambda: out * (1 - out), "Sigmoid")


def tanh(a: Tensor) -> Tensor:
    out = np.tanh(_floating(a))
    return _unary(a, out, lambda: 1 - out * out, "Tanh")


def gelu(a: Tensor, approximate: str = "none") -> Tensor:
    x = a.data
    if approximate == "tanh":
        c = math.sqrt(2 / math.pi)
        inner = c * (x + 0.044715 * x**3)
        t = np.tanh(inner)
        out = 0.5 * x * (1 + t)
        local = lambda: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)  # noqa: E731
        return _unary(a, out.astype(x.dtype), local, "Gelu")
    if approximate != "none":
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return _unary(a, (x * cdf).astype(x.dtype), lambda: cdf + x * pdf, "Gelu")


def softmax(a: Tensor, dim: int) -> Tensor:
    x = a.data
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    out = e / e.sum(axis=dim, keepdims=True)
    return _new(
        out, (a,), lambda g, n: (out * (g - (g * out).sum(axis=dim, keepdims=True)),), "Softmax"
    )


def log_softmax(a: Tensor, dim: int) -> Tensor:
    x = a.data
    shifted = x - x.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return _new(
        out, (a,), lambda g, n: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),), "LogSoftmax"
    )


# ---------------------------------------------------------------- reductions
def _axes(dim: Any, ndim: int) -> tuple[int, ...]:
    dims = dim if isinstance(dim, list | tuple) else (dim,)
    if dim is None or len(dims) == 0:  # PyTorch: dim=None or () reduces every dimension
        return tuple(range(ndim))
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def _expand_back(
    g: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool
) -> np.ndarray:
    if not keepdim:
        g = np.expand_dims(g, axes) if axes else g
    return np.broadcast_to(g, shape)


def sum(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    x = a.data
    if x.dtype.kind in "biu":  # integers (and bools) sum in int64, as in PyTorch
        x = x.astype(_dtypes.int64)
    axes = _axes(dim, x.ndim)
    out = x.sum(axis=axes, keepdims=keepdim)
    return _new(out, (a,), lambda g, n: (_expand_back(g, x.shape, axes, keepdim),), "Sum")


def mean(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    x = a.data
    if x.dtype.kind not in "fc":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {x.dtype}"
        )
    axes = _axes(dim, x.ndim)
    count = math.prod(x.shape[i] for i in axes)
    out = np.asarray(x.mean(axis=axes, keepdims=keepdim), dtype=x.dtype)
    return _new(out, (a,), lambda g, n: (_expand_back(g / count, x.shape, axes, keepdim),), "Mean")


def var(
    a: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    correction: int | None = None,
) -> Tensor:
    x = a.data
    axes = _axes(dim, x.ndim)
    ddof = correction if correction is not None else (0 if unbiased is False else 1)
    count = math.prod(x.shape[i] for i in axes)
    centred = x - x.mean(axis=axes, keepdims=True)
    out = np.asarray((centred**2).sum(axis=axes, keepdims=keepdim) / (count - ddof), x.dtype)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        return (_expand_back(g, x.shape, axes, keepdim) * 2 * centred / (count - ddof),)

    return _new(out, (a,), rule, "Var")


def extreme(a: Tensor, dim: Any, keepdim: bool, largest: bool) -> Any:
    """``max``/``min``: over everything (gradient shared among ties) or along ``dim``."""
    x = a.data
    name = "Max" if largest else "Min"
    if dim is None:
        if x.size == 0:
            raise RuntimeError(
                f"{name.lower()}(): Expected reduction dim to be specified for "
                "input.numel() == 0. Specify the reduction dim with the 'dim' "
                "argument."
            )
        value = x.max() if largest else x.min()
        ties = x == value
        return _new(value, (a,), lambda g, n: (ties * (g / ties.sum()),), name)
    dim = dim % x.ndim
    index = (x.argmax if largest else x.argmin)(axis=dim)
    index_k = np.expand_dims(index, dim)
    values = np.take_along_axis(x, index_k, axis=dim)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        full = np.zeros_like(x)
        np.put_along_axis(full, index_k, g if keepdim else np.expand_dims(g, dim), axis=dim)
        return (full,)

    out = _new(values if keepdim else values.squeeze(dim), (a,), rule, name)
    from ..tensor import ReductionResult

    return ReductionResult(out, Tensor(index_k if keepdim else index))


# ---------------------------------------------------------------- shapes and indexing
def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    original = a.shape
    return _new(a.data.reshape(shape), (a,), lambda g, n: (g.reshape(original),), "Reshape")


def permute(a: Tensor, dims: tuple[int, ...]) -> Tensor:
    dims = tuple(d % a.ndim for d in dims)
    inverse = tuple(np.argsort(dims))
    return _new(a.data.transpose(dims), (a,), lambda g, n: (g.transpose(inverse),), "Permute")


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    return _new(
        np.swapaxes(a.data, dim0, dim1),
        (a,),
        lambda g, n: (np.swapaxes(g, dim0, dim1),),
        "Transpose",
    )


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(p, int | slice | type(None) | type(Ellipsis)) and not isinstance(p, bool)
        for p in parts
    )


def getitem(a: Tensor, index: Any) -> Tensor:
    x = a.data
    basic = _is_basic(index)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        full = np.zeros_like(x)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)

    return _new(x[index], (a,), rule, "Index")


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    arrays = [t.data for t in tensors]
    if not arrays:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dtype = arrays[0].dtype
    for other in arrays[1:]:
        dtype = result_dtype(np.empty(1, dtype), np.empty(1, other.dtype))
    arrays = [arr.astype(dtype, copy=False) for arr in arrays]
    dim = dim % arrays[0].ndim
    bounds = np.cumsum([arr.shape[dim] for arr in arrays])[:-1]
    return _new(
        np.concatenate(arrays, axis=dim),
        tuple(tensors),
        lambda g, n: tuple(np.split(g, bounds, axis=dim)),
        "Cat",
    )


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    arrays = [t.data for t in tensors]
    if not arrays:
        raise RuntimeError("stack expects a non-empty TensorList")
    out = np.stack(arrays, axis=dim)
    axis = dim % out.ndim
    return _new(
        out,
        tuple(tensors),
        lambda g, n: tuple(np.take(g, i, axis=axis) for i in range(len(arrays))),
        "Stack",
    )


def where(condition: Any, a: Any, b: Any) -> Tensor:
    cond = np.asarray(_data(condition), dtype=bool)
    x, y = _data(a), _data(b)
    return _new(
        np.where(cond, x, y),
        (a, b),
        lambda g, n: (np.where(cond, g, 0), np.where(cond, 0, g)),
        "Where",
    )
