"""Linear layers, activations, dropout and flatten."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ... import _dtypes
from ...autograd import activations as _act
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
    b = None if bias is None else _tensor_arg(bias, "bias", "linear")
    out_shape = (*x.shape[:-1], w.shape[0]) if w.ndim == 2 else x.shape[:-1]
    if w.ndim == 2 and (b is None or (b.dtype == x.dtype and b.shape in ((), (w.shape[0],)))):
        return _fn.linear(x, w, b)
    y = x @ w.T
    if b is None:
        return y
    _check_broadcast(out_shape, b.shape)
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


def _activation(op: str, input: Any, inplace: bool, compute: Any) -> Tensor:
    x = _tensor_arg(input, "input", op)
    _require_float(x, op)
    return _inplace(x, compute(x), inplace)


def relu6(input: Any, inplace: bool = False) -> Tensor:
    """``min(max(input, 0), 6)``.

    >>> import convscope as cs
    >>> relu6(cs.tensor([-1.0, 3.0, 9.0])).tolist()
    [0.0, 3.0, 6.0]
    """
    return _activation("relu6", input, inplace, _act.relu6)


def hardtanh(
    input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """``input`` clamped to ``[min_val, max_val]``.

    >>> import convscope as cs
    >>> hardtanh(cs.tensor([-2.0, 0.5])).tolist()
    [-1.0, 0.5]
    """
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _activation("hardtanh", input, inplace, lambda x: _act.hardtanh(x, min_val, max_val))


def hardsigmoid(input: Any, inplace: bool = False) -> Tensor:
    """``relu6(input + 3) / 6``.

    >>> import convscope as cs
    >>> hardsigmoid(cs.tensor([0.0])).tolist()
    [0.5]
    """
    return _activation("hardsigmoid", input, inplace, _act.hardsigmoid)


def hardswish(input: Any, inplace: bool = False) -> Tensor:
    """``input * relu6(input + 3) / 6`` (MobileNetV3).

    >>> import convscope as cs
    >>> hardswish(cs.tensor([-4.0, 3.0])).tolist()
    [-0.0, 3.0]
    """
    return _activation("hardswish", input, inplace, _act.hardswish)


def silu(input: Any, inplace: bool = False) -> Tensor:
    """``input * sigmoid(input)`` (swish; EfficientNet).

    >>> import convscope as cs
    >>> silu(cs.tensor([0.0])).tolist()
    [0.0]
    """
    return _activation("silu", input, inplace, _act.silu)


def mish(input: Any, inplace: bool = False) -> Tensor:
    """``input * tanh(softplus(input))``.

    >>> import convscope as cs
    >>> round(mish(cs.tensor([1.0])).item(), 4)
    0.8651
    """
    return _activation("mish", input, inplace, _act.mish)


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere.

    >>> import convscope as cs
    >>> round(elu(cs.tensor([-1.0])).item(), 4)
    -0.6321
    """
    return _activation("elu", input, inplace, lambda x: _act.elu(x, alpha))


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * input)) / beta``, the identity where ``beta * input > threshold``.

    >>> import convscope as cs
    >>> round(softplus(cs.tensor([0.0])).item(), 4)
    0.6931
    """
    return _activation("softplus", input, False, lambda x: _act.softplus(x, beta, threshold))


def prelu(input: Any, weight: Any) -> Tensor:
    """``input`` where positive, ``weight * input`` elsewhere (``weight``: one value, or one
    per channel of dimension 1).

    >>> import convscope as cs
    >>> prelu(cs.tensor([[-2.0, 1.0]]), cs.tensor([0.25])).tolist()
    [[-0.5, 1.0]]
    """
    x = _tensor_arg(input, "input", "prelu")
    w = _tensor_arg(weight, "weight", "prelu")
    _require_float(x, "prelu")
    if w.numel() != 1:
        channels = x.shape[1] if x.ndim >= 2 else 1
        if w.ndim != 1 or w.numel() != channels:
            raise RuntimeError(
                f"Mismatch of parameter numbers and input channel size. Found parameter numbers "
                f"= {w.numel()} and channel size = {channels}."
            )
    return _act.prelu(x, w)


def _channel_dropout(
    op: str, input: Any, p: float, training: bool, inplace: bool, n: int
) -> Tensor:
    """Zero whole channels (dimension -n-1 of an ``(N, C, *spatial)`` or ``(C, *spatial)``
    input) with probability ``p``, scaling the rest by ``1/(1-p)``."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _tensor_arg(input, "input", op)
    if x.ndim not in (n + 1, n + 2):
        raise RuntimeError(
            f"{op}: Expected {n + 1}D or {n + 2}D input, but received a {x.ndim}D input."
        )
    if not training or p == 0 or x.numel() == 0:
        return x
    mask_shape = x.shape[: x.ndim - n] + (1,) * n
    if p == 1:
        noise = np.zeros(mask_shape, x.dtype)
    else:
        keep = default_generator().random(mask_shape) >= p
        noise = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return _inplace(x, x * noise, inplace)


def dropout1d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, L)`` or ``(C, L)``.

    >>> import convscope as cs
    >>> dropout1d(cs.ones(1, 2, 3), training=False).shape
    (1, 2, 3)
    """
    return _channel_dropout("dropout1d", input, p, training, inplace, 1)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, H, W)`` or ``(C, H, W)``.

    >>> import convscope as cs
    >>> _ = cs.manual_seed(0)
    >>> y = dropout2d(cs.ones(1, 8, 2, 2), p=0.5)
    >>> sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [2.0], [0.0])
    True
    """
    return _channel_dropout("dropout2d", input, p, training, inplace, 2)


def dropout3d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> import convscope as cs
    >>> dropout3d(cs.ones(1, 2, 2, 2, 2), training=False).shape
    (1, 2, 2, 2, 2)
    """
    return _channel_dropout("dropout3d", input, p, training, inplace, 3)
