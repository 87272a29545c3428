"""Differentiable operations on tensors: the forward on NumPy arrays plus a backward rule.

Each rule receives the gradient of the result and a tuple saying which parents need a
gradient, and returns one gradient (or ``None``) per parent; the engine sums gradients over
broadcast dimensions.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtypes
from ..ops import elementwise
from ..ops.algorithms import precisely
from ..ops.matmul import matmul as ops_matmul
from ..tensor import Tensor
from .engine import attach, is_grad_enabled, unbroadcast


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
    x, y = _data(a), _data(b)
    if type(x) is np.ndarray and type(y) is np.ndarray and x.dtype == y.dtype:
        return x, y  # the common case between layers: nothing to promote
    dtype = result_dtype(x, y)
    return operand(x, dtype), operand(y, dtype)


def recording(*parents: Any) -> bool:
    """Whether an operation on ``parents`` records a graph node (to skip bookkeeping if not)."""
    return is_grad_enabled() and any(getattr(p, "requires_grad", False) for p in parents)


def check_dim(dim: int, ndim: int) -> int:
    """``dim`` in ``[0, ndim)`` (negative counts from the end; a 0-d tensor takes 0 and -1),
    or PyTorch's IndexError."""
    bound = ndim if ndim > 0 else 1
    if not -bound <= dim < bound:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but "
            f"got {dim})"
        )
    return dim % bound


def broadcast_error(a: tuple[int, ...], b: tuple[int, ...]) -> RuntimeError:
    """PyTorch's error for shapes that do not broadcast, naming the first clash."""
    for i in range(1, min(len(a), len(b)) + 1):
        if a[-i] != b[-i] and 1 not in (a[-i], b[-i]):
            return RuntimeError(
                f"The size of tensor a ({a[-i]}) must match the size of tensor b ({b[-i]}) at "
                f"non-singleton dimension {max(len(a), len(b)) - i}"
            )
    return RuntimeError(f"shapes {list(a)} and {list(b)} do not broadcast")


def _broadcasting(op: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    try:
        return op(x, y)
    except ValueError:
        raise broadcast_error(np.shape(x), np.shape(y)) from None


# ---------------------------------------------------------------- binary arithmetic
def add(a: Tensor, b: Any, alpha: Any = 1) -> Tensor:
    """``a + alpha * b``."""
    x, y = _operands(a, b)
    if alpha == 1:
        return _new(_broadcasting(np.add, x, y), (a, b), lambda g, n: (g, g), "Add")
    out = _broadcasting(np.add, x, alpha * y)
    return _new(out, (a, b), lambda g, n: (g, g * alpha if n[1] else None), "Add")


def sub(a: Tensor, b: Any, reverse: bool = False, alpha: Any = 1) -> Tensor:
    """``a - alpha * b`` (``b - a`` when ``reverse``)."""
    x, y = _operands(a, b)
    if reverse:
        return _new(_broadcasting(np.subtract, y, x), (a, b), lambda g, n: (-g, g), "RsubBackward1")
    if alpha == 1:
        return _new(_broadcasting(np.subtract, x, y), (a, b), lambda g, n: (g, -g), "Sub")
    out = _broadcasting(np.subtract, x, alpha * y)
    return _new(out, (a, b), lambda g, n: (g, g * -alpha if n[1] else None), "Sub")


def mul(a: Tensor, b: Any) -> Tensor:
    x, y = _operands(a, b)
    return _new(
        _broadcasting(np.multiply, x, y),
        (a, b),
        lambda g, n: (g * y if n[0] else None, g * x if n[1] else None),
        "Mul",
    )


def div(a: Any, b: Any) -> Tensor:
    """True division; integer / integer gives the default float dtype, as in PyTorch."""
    x, y = _operands(a, b)
    out = _broadcasting(np.true_divide, x, y)
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

    return _new(out, (a, b), rule, "PowBackward1" if isinstance(b, Tensor) else "Pow")


def rpow(base: Any, a: Tensor) -> Tensor:
    x, y = operand(base, a.dtype), _data(a)
    out = np.power(x, y)
    return _new(out, (a,), lambda g, n: (g * out * np.log(x),), "PowBackward2")


def _matmul_name(x: np.ndarray, y: np.ndarray) -> str:
    """PyTorch's node for the product of these ranks (it picks a different kernel for each)."""
    names = {(1, 1): "Dot", (2, 1): "Mv", (2, 2): "Mm", (1, 2): "SqueezeBackward4"}
    return names.get((x.ndim, y.ndim), "UnsafeView")


def _stacked_times_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.matmul(x, y)``, with a stack of matrices times one matrix done as one 2-D GEMM:
    NumPy would call BLAS once per matrix of the stack (a Linear layer on (8, 56, 56, 96)
    took 2.5 s that way, 62 ms as one GEMM)."""
    if x.ndim > 2 and y.ndim == 2:
        rows = x.reshape(-1, x.shape[-1])
        return ops_matmul(rows, y).reshape(*x.shape[:-1], y.shape[-1])
    return ops_matmul(x, y) if x.ndim >= 2 and y.ndim >= 2 else np.matmul(x, y)


def linear(a: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``a @ w.T + b`` for a 2-D ``w`` as one node (PyTorch's ``addmm``): the bias is added in
    place on the product, whose rows are one GEMM whatever ``a``'s leading dimensions, so a
    Linear layer makes one output array instead of two.  Callers check shapes and dtypes."""
    x, weight = a.data, w.data
    # a product that feeds a gradient keeps BLAS's own threads idle (ops.matmul)
    with precisely(recording(a, w, b)):
        out = _stacked_times_matrix(x, weight.T)
    if b is not None:
        out += b.data

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        rows = g.reshape(-1, g.shape[-1])
        with precisely():
            gx = _stacked_times_matrix(g, weight) if n[0] else None
            gw = ops_matmul(rows.T, x.reshape(-1, x.shape[-1])) if n[1] else None
        if b is None:
            return gx, gw
        return gx, gw, rows.sum(axis=0) if n[2] else None

    parents = (a, w) if b is None else (a, w, b)
    # PyTorch's node names for the ranks it reshapes through
    names = {1: ("SqueezeBackward4", "View"), 2: ("Mm", "Addmm")}
    name = names.get(x.ndim, ("UnsafeView", "View"))[b is not None]
    return _new(out, parents, rule, name if recording(*parents) else "")


def matmul(a: Any, b: Any) -> Tensor:
    x, y = _data(a), _data(b)
    if x.ndim == 0 or y.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {x.ndim}D and {y.ndim}D"
        )
    # 1-D operands act as a row (left) or a column (right), as in NumPy and PyTorch
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y

    try:
        out = _stacked_times_matrix(x, y)
    except ValueError:
        sizes = ("x".join(map(str, v.shape)) for v in (x2, y2))
        raise RuntimeError(
            "mat1 and mat2 shapes cannot be multiplied ({} and {})".format(*sizes)
        ) from None

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        shape = list(g.shape)  # the 1-D operands' dropped dimensions, back
        if y.ndim == 1:
            shape.append(1)
        if x.ndim == 1:
            shape.insert(len(shape) - 1, 1)
        g2 = g.reshape(shape)
        ga = gb = None
        if n[0]:
            ga = _stacked_times_matrix(g2, np.swapaxes(y2, -1, -2))
            ga = unbroadcast(ga, x2.shape).reshape(x.shape)
        if n[1] and x2.ndim > 2 and y2.ndim == 2:  # summed over the stack by the GEMM itself
            gb = (x2.reshape(-1, x2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])).reshape(y.shape)
        elif n[1]:
            gb = unbroadcast(np.swapaxes(x2, -1, -2) @ g2, y2.shape).reshape(y.shape)
        return ga, gb

    return _new(out, (a, b), rule, _matmul_name(x, y) if recording(a, b) else "")


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
    out = np.clip(x, min, max).astype(x.dtype, copy=False)

    def inside() -> np.ndarray:  # the gradient's mask, only for a backward pass
        mask = np.ones(x.shape, dtype=bool)
        if min is not None:
            mask &= x >= min
        if max is not None:
            mask &= x <= max
        return mask

    return _unary(a, out, inside, "Clamp")


def relu(a: Tensor) -> Tensor:
    x = a.data
    out = np.maximum(x, 0).astype(a.dtype, copy=False)  # one pass, no second copy
    if x.dtype.kind != "f":
        return _unary(a, out, lambda: x > 0, "Relu")
    return _new(out, (a,), lambda g, n: (elementwise.pass_positive(g, x),), "Relu")


def leaky_relu(a: Tensor, negative_slope: float = 0.01) -> Tensor:
    x = a.data
    slope = np.where(x > 0, 1, negative_slope).astype(x.dtype)
    return _unary(a, x * slope, lambda: slope, "LeakyRelu")


def sigmoid(a: Tensor) -> Tensor:
    out = elementwise.logistic(_floating(a))
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

    def local() -> np.ndarray:  # only for a backward pass
        cdf = elementwise.normal_cdf(x)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return cdf + x * pdf

    return _unary(a, elementwise.gelu(x), local, "Gelu")


def _softmax_axis(x: np.ndarray, dim: int) -> int | None:
    return check_dim(dim, x.ndim) if x.ndim else None


def softmax(a: Tensor, dim: int) -> Tensor:
    x = a.data
    dim = _softmax_axis(x, dim)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    out = e / e.sum(axis=dim, keepdims=True)
    return _new(
        out, (a,), lambda g, n: (out * (g - (g * out).sum(axis=dim, keepdims=True)),), "Softmax"
    )


def log_softmax(a: Tensor, dim: int) -> Tensor:
    x = a.data
    dim = _softmax_axis(x, dim)
    shifted = x - x.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return _new(
        out, (a,), lambda g, n: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),), "LogSoftmax"
    )


def _flat_gradient(a: Tensor, out: np.ndarray, name: str) -> Tensor:
    """A piecewise-constant function (``sign``, ``floor``, ``round``): zero gradient."""
    return _new(out, (a,), lambda g, n: (np.zeros_like(g),), name)


def sign(a: Tensor) -> Tensor:
    x = a.data
    if x.dtype.kind == "b":
        return _new(x.copy(), (a,), None, "Sign")
    return _flat_gradient(a, np.sign(x), "Sign")


def floor(a: Tensor) -> Tensor:
    x = a.data
    return _flat_gradient(a, np.floor(x) if x.dtype.kind == "f" else x.copy(), "Floor")


def round(a: Tensor, decimals: int = 0) -> Tensor:
    """Half to even, as PyTorch (and NumPy) round."""
    x = a.data
    out = np.round(x, decimals) if x.dtype.kind == "f" else x.copy()
    return _flat_gradient(a, out, "Round")


def maximum(a: Any, b: Any, largest: bool = True) -> Tensor:
    """Elementwise ``maximum``/``minimum``; a tie sends half the gradient to each side."""
    x, y = _operands(a, b)
    out = _broadcasting(np.maximum if largest else np.minimum, x, y)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        first = (x > y) if largest else (x < y)
        share = np.where(x == y, g.dtype.type(0.5), first).astype(g.dtype, copy=False)
        return (g * share if n[0] else None, g - g * share if n[1] else None)

    return _new(out, (a, b), rule, "Maximum" if largest else "Minimum")


# ---------------------------------------------------------------- reductions
def _axes(dim: Any, ndim: int) -> tuple[int, ...]:
    """The dimensions a reduction covers: ``None`` or ``()`` for all of them."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, list | tuple) else (dim,)
    if not dims:
        return tuple(range(ndim))
    axes = [check_dim(d, ndim) for d in dims]
    for d in axes:
        if axes.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return tuple(sorted(axes)) if ndim else ()


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
    name = "Sum" if dim is None else "SumBackward1"
    return _new(out, (a,), lambda g, n: (_expand_back(g, x.shape, axes, keepdim),), name)


def mean(a: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    x = a.data
    if x.dtype.kind not in "fc":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {_dtype_name(x.dtype)}"
        )
    axes = _axes(dim, x.ndim)
    count = math.prod(x.shape[i] for i in axes)
    out = np.asarray(x.mean(axis=axes, keepdims=keepdim), dtype=x.dtype)
    name = "Mean" if dim is None else "MeanBackward1"
    return _new(out, (a,), lambda g, n: (_expand_back(g / count, x.shape, axes, keepdim),), name)


def _dtype_name(dtype: np.dtype) -> str:
    """PyTorch's scalar-type name (``Float``, ``Long``...) used in its messages."""
    names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long"}
    names.update(int32="Int", int16="Short", int8="Char", uint8="Byte", bool="Bool")
    return names.get(str(dtype), str(dtype))


def _spread(
    a: Tensor, dim: Any, unbiased: bool | None, keepdim: bool, correction: Any, root: bool
) -> Tensor:
    """``var`` (or ``std`` when ``root``) with ``correction`` (Bessel's by default)."""
    x = a.data
    if x.dtype.kind not in "fc":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    if unbiased is not None and correction is not None:
        raise RuntimeError("Cannot pass both correction and unbiased arguments")
    axes = _axes(dim, x.ndim)
    ddof = correction if correction is not None else (0 if unbiased is False else 1)
    divisor = builtins.max(math.prod(x.shape[i] for i in axes) - ddof, 0)
    centred = x - x.mean(axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(np.square(centred).sum(axis=axes, keepdims=keepdim) / divisor, x.dtype)
        if root:
            out = np.sqrt(out)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        if not keepdim:
            g = np.expand_dims(g, axes)
        with np.errstate(divide="ignore", invalid="ignore"):
            if root:  # d std = d var / (2 std)
                return (g / (out if keepdim else np.expand_dims(out, axes)) * centred / divisor,)
            return (g * 2 * centred / divisor,)

    return _new(out, (a,), rule, "Std" if root else "Var")


def var(
    a: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    correction: Any = None,
) -> Tensor:
    return _spread(a, dim, unbiased, keepdim, correction, root=False)


def std(
    a: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    correction: Any = None,
) -> Tensor:
    return _spread(a, dim, unbiased, keepdim, correction, root=True)


def _empty_reduction(x: np.ndarray, name: str) -> None:
    if x.size == 0:
        raise RuntimeError(
            f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
            "the reduction dim with the 'dim' argument."
        )


def extreme(a: Tensor, dim: Any, keepdim: bool, largest: bool) -> Any:
    """``max``/``min``: over everything (gradient shared among ties) or along ``dim``."""
    from ..tensor import ReductionResult

    x = a.data
    name = "Max" if largest else "Min"
    if dim is None:
        _empty_reduction(x, name.lower())
        value = x.max() if largest else x.min()

        def rule_all(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
            ties = x == value
            return (ties * (g / ties.sum()),)

        return _new(value, (a,), rule_all, f"{name}Backward1")
    dim = check_dim(dim, x.ndim)
    if x.ndim == 0:
        return ReductionResult(_new(x.copy(), (a,), lambda g, n: (g,), name), Tensor(np.int64(0)))
    if x.shape[dim] == 0:
        raise IndexError(f"{name.lower()}(): Expected reduction dim {dim} to have non-zero size.")
    index = (x.argmax if largest else x.argmin)(axis=dim)
    index_k = np.expand_dims(index, dim)
    values = x.max(axis=dim, keepdims=True) if largest else x.min(axis=dim, keepdims=True)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        full = np.zeros_like(x)
        np.put_along_axis(full, index_k, g if keepdim else np.expand_dims(g, dim), axis=dim)
        return (full,)

    out = _new(values if keepdim else values.squeeze(dim), (a,), rule, name)
    return ReductionResult(out, Tensor(index_k if keepdim else index))


def extreme_values(a: Tensor, dim: Any, keepdim: bool, largest: bool) -> Tensor:
    """``amax``/``amin``: the extreme over ``dim`` (all by default), ties sharing the gradient."""
    x = a.data
    axes = _axes(dim, x.ndim)
    name = "amax" if largest else "amin"
    if x.size == 0 and any(x.shape[d] == 0 for d in axes):
        raise IndexError(f"{name}(): Expected reduction dim {axes[0]} to have non-zero size.")
    kept = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        ties = x == kept
        count = ties.sum(axis=axes, keepdims=True)
        return (ties * (_expand_back(g, kept.shape, axes, keepdim) / count),)

    out = kept if keepdim else kept.reshape([s for i, s in enumerate(x.shape) if i not in axes])
    return _new(out, (a,), rule, "Amax" if largest else "Amin")


def argsort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable order along ``axis``; descending keeps equal values in index order and puts NaN
    first, as PyTorch's stable sort does."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return np.flip(x.shape[axis] - 1 - order, axis)


def _gathered(a: Tensor, index: np.ndarray, axis: int, name: str) -> Tensor:
    """``a``'s values at ``index`` along ``axis`` (distinct positions, as from a sort)."""
    x = a.data

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        full = np.zeros_like(x)
        np.put_along_axis(full, index, g, axis=axis)
        return (full,)

    return _new(np.take_along_axis(x, index, axis=axis), (a,), rule, name)


def sort(a: Tensor, dim: int, descending: bool) -> tuple[Tensor, Tensor]:
    axis = check_dim(dim, a.ndim)
    index = argsort(a.data, axis, descending)
    return _gathered(a, index, axis, "Sort"), Tensor(index)


def topk(a: Tensor, k: int, dim: int, largest: bool) -> tuple[Tensor, Tensor]:
    axis = check_dim(dim, a.ndim)
    if not 0 <= k <= a.shape[axis]:
        raise RuntimeError("selected index k out of range")
    index = argsort(a.data, axis, largest)[(slice(None),) * axis + (slice(0, k),)]
    return _gathered(a, index, axis, "Topk"), Tensor(index)


# ---------------------------------------------------------------- shapes and indexing
def reshape(a: Tensor, shape: tuple[int, ...], name: str | None = None) -> Tensor:
    x = a.data
    out = x.reshape(shape)
    if name is None and recording(a):
        shared = x.flags.c_contiguous or np.may_share_memory(out, x)
        name = "View" if shared else "UnsafeView"
    return _new(out, (a,), lambda g, n: (g.reshape(x.shape),), name or "View")


def view(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``reshape`` that refuses to copy, as PyTorch's ``view``."""
    x = a.data
    try:
        out = x.reshape(shape) if x.flags.c_contiguous else np.reshape(x, shape, copy=False)
    except ValueError:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        ) from None
    return _new(out, (a,), lambda g, n: (g.reshape(x.shape),), "View")


def expand(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A read-only broadcast view; the engine sums the gradient back to ``a``'s shape."""
    return _new(np.broadcast_to(a.data, shape), (a,), lambda g, n: (g,), "Expand")


def repeat(a: Tensor, repeats: tuple[int, ...]) -> Tensor:
    x = a.data
    source = x.reshape((1,) * (len(repeats) - x.ndim) + x.shape)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        paired = [v for pair in zip(repeats, source.shape, strict=True) for v in pair]
        summed = g.reshape(paired).sum(axis=tuple(range(0, 2 * len(repeats), 2)))
        return (summed.reshape(x.shape),)

    return _new(np.tile(source, repeats), (a,), rule, "Repeat")


def permute(a: Tensor, dims: tuple[int, ...]) -> Tensor:
    ndim = a.ndim
    if len(dims) != ndim:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {ndim} is not "
            f"equal to len(dims) = {len(dims)}"
        )
    dims = tuple(check_dim(d, ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    inverse = tuple(np.argsort(dims))
    return _new(a.data.transpose(dims), (a,), lambda g, n: (g.transpose(inverse),), "Permute")


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    dim0, dim1 = check_dim(dim0, a.ndim), check_dim(dim1, a.ndim)
    if a.ndim == 0:
        return _new(a.data, (a,), lambda g, n: (g,), "Transpose")
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


def _index_name(index: Any, shape: tuple[int, ...]) -> str:
    """PyTorch's node for a basic index: the last view it applies (a full slice inside a tuple
    applies none)."""
    if not isinstance(index, tuple):
        names = {slice: "Slice", type(None): "Unsqueeze", type(Ellipsis): "Alias"}
        return names.get(type(index), "Select")
    name, dim = "Alias", 0
    for part in index:
        if part is Ellipsis:
            dim += len(shape) - builtins.sum(isinstance(p, int | slice) for p in index)
        elif part is None:
            name = "Unsqueeze"
        elif isinstance(part, slice):
            if dim < len(shape) and part.indices(shape[dim]) != (0, shape[dim], 1):
                name = "Slice"
            dim += 1
        else:
            name, dim = "Select", dim + 1
    return name


def getitem(a: Tensor, index: Any, name: str | None = None) -> Tensor:
    x = a.data
    basic = _is_basic(index)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        full = np.zeros_like(x)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)

    if name is None and recording(a):
        name = _index_name(index, x.shape) if basic else "Index"
    return _new(x[index], (a,), rule, name or "Index")


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    arrays = [t.data for t in tensors]
    if not arrays:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dtype = arrays[0].dtype
    for other in arrays[1:]:
        if other.dtype != dtype:
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
    dtype = arrays[0].dtype
    for other in arrays[1:]:
        if other.dtype != dtype:
            dtype = result_dtype(np.empty(1, dtype), np.empty(1, other.dtype))
    out = np.stack([arr.astype(dtype, copy=False) for arr in arrays], axis=dim)
    axis = dim % out.ndim
    return _new(
        out,
        tuple(tensors),
        lambda g, n: tuple(np.take(g, i, axis=axis) for i in range(len(arrays))),
        "Stack",
    )


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` else ``b``, promoted like PyTorch (scalars allowed)."""
    cond = np.asarray(_data(condition), dtype=bool)
    x, y = _data(a), _data(b)
    scalars = all(isinstance(v, bool | int | float) for v in (x, y))
    dtype = _dtypes.infer_dtype([x, y]) if scalars else result_dtype(x, y)
    x, y = operand(x, dtype), operand(y, dtype)

    def rule(g: np.ndarray, n: tuple[bool, ...]) -> tuple:
        return (np.where(cond, g, 0) if n[0] else None, np.where(cond, 0, g) if n[1] else None)

    return _new(np.where(cond, x, y), (a, b), rule, "Where")


# ---------------------------------------------------------------- einsum
def _einsum_spec(equation: str, operands: Sequence[np.ndarray]) -> tuple[list[str], str]:
    """The input terms and the output term (implicit mode: the letters seen once, sorted)."""
    spec = equation.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(
            "einsum(): more operands were provided than specified in the equation"
            if len(operands) > len(terms)
            else "einsum(): fewer operands were provided than specified in the equation"
        )
    if not arrow:
        letters = "".join(terms).replace(".", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        if any("..." in t for t in terms):
            output = "..." + output
    return terms, output


def _unique(term: str) -> str:
    """``term`` without repeated letters (a diagonal), the ellipsis kept in place."""
    seen: list[str] = []
    for part in term.replace("...", "."):
        if part == "." or part not in seen:
            seen.append(part)
    return "".join(seen).replace(".", "...")


def einsum(equation: str, tensors: Sequence[Tensor]) -> Tensor:
    """NumPy's einsum; each operand's gradient is another einsum of the output's gradient with
    the other operands (letters it alone sums over broadcast back, diagonals scattered)."""
    arrays = [t.data for t in tensors]
    terms, output = _einsum_spec(equation, arrays)
    many = len(arrays) > 2
    try:
        out = np.einsum(f"{','.join(terms)}->{output}", *arrays, optimize=many)
    except ValueError as error:
        raise RuntimeError(f"einsum(): {error}") from None

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        grads = []
        for i, (need, term) in enumerate(zip(needs, terms, strict=True)):
            if not need:
                grads.append(None)
                continue
            others = [j for j in range(len(terms)) if j != i]
            seen = set(output + "".join(terms[j] for j in others))
            unique = _unique(term)
            free = "".join(c for c in unique if c != "." and c not in seen)
            sizes = dict(zip(term.replace("...", ""), _letter_sizes(term, arrays[i]), strict=True))
            pieces = [output, *(terms[j] for j in others)] + ([free] if free else [])
            values = [g, *(arrays[j] for j in others)]
            if free:  # letters only this operand has: the gradient is constant along them
                values.append(np.ones([sizes[c] for c in free], g.dtype))
            grad = np.einsum(f"{','.join(pieces)}->{unique}", *values, optimize=len(values) > 2)
            if unique != term:  # a repeated letter: the gradient lives on the diagonal
                full = np.zeros(arrays[i].shape, grad.dtype)
                np.einsum(f"{term}->{unique}", full)[...] = unbroadcast(
                    grad, np.einsum(f"{term}->{unique}", full).shape
                )
                grad = full
            grads.append(grad)
        return tuple(grads)

    return _new(out, tuple(tensors), rule, "Einsum")


def _letter_sizes(term: str, array: np.ndarray) -> list[int]:
    """The size of each letter of ``term`` (ellipsis dimensions skipped) in ``array``."""
    if "..." not in term:
        return list(array.shape)
    before, after = term.split("...")
    return list(array.shape[: len(before)]) + (
        list(array.shape[array.ndim - len(after) :]) if after else []
    )
