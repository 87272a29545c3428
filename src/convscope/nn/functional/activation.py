"""Linear layers, activations, dropout and flatten."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ... import _dtypes
from ...autograd import functions as _fn
from ...random import default_generator
from ...tensor import Tensor
from ._common import _check_broadcast, _dim, _inplace, _require_float, _tensor_arg


def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """``input @ weight.T + bias`` over the last dimension of ``input``.

    >>> import convscope as cs
    >>> linear(cs.ones(2, 3), cs.ones(4, 3), cs.full((4,), 0.5)).tolist()[0]
    [3.5, 3.5, 3.5, 3.5]
    """
    x, w = _tensor_arg(input, "input", "linear"), _tensor_arg(weight, "weight", "linear")
    if x.dtype != w.dtype:
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {x.dtype} != {w.dtype}"
        )
    if w.ndim not in (1, 2) or x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        rows = math.prod(x.shape[:-1]) if x.ndim else 1
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1] if x.ndim else 1} "
            f"and {'x'.join(str(s) for s in reversed(w.shape))})"
        )
    y = x @ w.T
    if bias is None:
        return y
    b = _tensor_arg(bias, "bias", "linear")
    _check_broadcast(y.shape, b.shape)
    return y + b


def relu(input: Any, inplace: bool = False) -> Tensor:
    """``max(input, 0)``.

    >>> import convscope as cs
    >>> relu(cs.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    x = _tensor_arg(input, "input", "relu")
    return _inplace(x, _fn.relu(x), inplace)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``input`` where positive, ``negative_slope * input`` elsewhere.

    >>> import convscope as cs
    >>> leaky_relu(cs.tensor([-2.0, 3.0]), 0.5).tolist()
    [-1.0, 3.0]
    """
    x = _tensor_arg(input, "input", "leaky_relu")
    return _inplace(x, _fn.leaky_relu(x, negative_slope), inplace)


def _floating(input: Any, op: str) -> Tensor:
    """Integer and bool tensors as the default float dtype (PyTorch's rule for sigmoid, tanh)."""
    x = _tensor_arg(input, "input", op)
    return x if x.dtype.kind == "f" else x.to(_dtypes.get_default_dtype())


def sigmoid(input: Any) -> Tensor:
    """``1 / (1 + exp(-input))``, computed without overflow.

    >>> import convscope as cs
    >>> sigmoid(cs.tensor([0.0])).tolist()
    [0.5]
    """
    return _fn.sigmoid(_floating(input, "sigmoid"))


def tanh(input: Any) -> Tensor:
    """Hyperbolic tangent; integer input gives the default float dtype.

    >>> import convscope as cs
    >>> tanh(cs.tensor([0, 100])).tolist()
    [0.0, 1.0]
    """
    return _fn.tanh(_floating(input, "tanh"))


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """``input * Phi(input)`` (``approximate='tanh'``: PyTorch's tanh formula).

    >>> import convscope as cs
    >>> [round(v, 4) for v in gelu(cs.tensor([-1.0, 1.0])).tolist()]
    [-0.1587, 0.8413]
    """
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    x = _tensor_arg(input, "input", "gelu")
    _require_float(x, "GeluKernelImpl")
    return _fn.gelu(x, approximate)


def _softmax_dim(op: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {op} has been deprecated. Change the call to include "
        "dim=X as an argument.",
        UserWarning,
        stacklevel=stacklevel + 1,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_input(
    op: str, input: Any, dim: int | None, stacklevel: int, dtype: Any
) -> tuple[Tensor, int]:
    x = _tensor_arg(input, "input", op)
    if dtype is not None:
        x = x.to(dtype)
    if dim is None:
        dim = _softmax_dim(op, x.ndim, stacklevel)
    _require_float(x, f"{op}_lastdim_kernel_impl")
    return x, _dim(dim, x.ndim)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """``exp(input)`` normalised to sum to one along ``dim``.

    ``dim=None`` picks PyTorch's implicit dimension (0 for 0-, 1- and 3-D input, else 1) and
    warns; ``dtype`` casts the input first.

    >>> import convscope as cs
    >>> softmax(cs.tensor([[0.0, 0.0]]), dim=1).tolist()
    [[0.5, 0.5]]
    """
    x, dim = _softmax_input("softmax", input, dim, _stacklevel, dtype)
    return _fn.softmax(x, dim)


def log_softmax(
    input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """``log(softmax(input, dim))``, computed stably.

    >>> import convscope as cs
    >>> [round(v, 4) for v in log_softmax(cs.tensor([0.0, 0.0]), dim=0).tolist()]
    [-0.6931, -0.6931]
    """
    x, dim = _softmax_input("log_softmax", input, dim, _stacklevel, dtype)
    return _fn.log_softmax(x, dim)


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training);
    the identity otherwise.  Draws from ``convscope.random.default_generator()``.

    >>> import convscope as cs
    >>> _ = cs.manual_seed(0)
    >>> sorted(set(dropout(cs.ones(100), p=0.75).tolist()))
    [0.0, 4.0]
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _tensor_arg(input, "input", "dropout")
    if not training or p == 0 or x.numel() == 0:
        return x
    if p == 1:
        noise = np.zeros(x.shape, x.dtype)
    else:
        keep = default_generator().random(x.shape) >= p
        noise = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return _inplace(x, x * noise, inplace)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one (``torch.flatten``).

    >>> import convscope as cs
    >>> flatten(cs.zeros(2, 3, 4), start_dim=1).shape
    (2, 12)
    """
    x = _tensor_arg(input, "input", "flatten")
    start, end = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return x.flatten(start, end)
