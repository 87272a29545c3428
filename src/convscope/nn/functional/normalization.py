"""Normalisation functions: ``batch_norm``, ``instance_norm``, ``group_norm``, ``layer_norm``,
``local_response_norm``.

Each validates its arguments as PyTorch does (same exception classes and messages), then runs
one differentiable op of :mod:`convscope.autograd.normalization`.  Parameters and running
statistics must have the input's dtype (PyTorch's CPU rule; the result keeps it).

>>> import convscope as cs
>>> x = cs.tensor([[1.0, 2.0, 3.0, 4.0]])
>>> [round(v, 4) for v in layer_norm(x, (4,)).flatten().tolist()]
[-1.3416, -0.4472, 0.4472, 1.3416]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import _dtypes
from ...autograd import normalization as norm
from ...autograd.engine import attach
from ...ops import normalization as norm_ops
from ...tensor import Tensor
from ._common import _dim, _require_float, _tensor_arg
from .conv import _array, _as_tensor


# ---------------------------------------------------------------- shared checks
def _optional(value: Any, name: str, op: str) -> Tensor | None:
    if value is None:
        return None
    _array(value, name, op)
    return _as_tensor(value)


def _check_dtypes(x: Tensor, *params: Any) -> None:
    """PyTorch's CPU rule: parameters share the input's dtype."""
    for value in params:
        if value is None or value.dtype == x.dtype:
            continue
        if x.dtype == np.float32:
            raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _verify_batch_size(size: Sequence[int]) -> None:
    count = size[0] * math.prod(size[2:])
    if count == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {list(size)}"
        )


def _channels_view(x: Tensor) -> np.ndarray:
    """``x``'s data as a C-contiguous ``(N, C, S)`` array (no copy when already contiguous)."""
    return np.ascontiguousarray(x.data).reshape(x.shape[0], x.shape[1], -1)


def _empty(x: Tensor, *params: Tensor | None) -> Tensor:
    """The (empty) result for an input without elements: zero gradients for everything."""
    parents = (x, *params)
    return attach(
        Tensor(np.empty(x.shape, x.dtype)),
        parents,
        lambda g, n: tuple(None if p is None else np.zeros(p.shape, p.dtype) for p in parents),
        "NativeNorm",
    )


def _update_running(buffer: Any, batch: np.ndarray, momentum: float) -> None:
    """``buffer = (1 - momentum) * buffer + momentum * batch`` in place (float64 arithmetic)."""
    array = _array(buffer, "running stats", "batch_norm")
    updated = (1 - momentum) * array.astype(np.float64) + momentum * batch.reshape(array.shape)
    array[...] = updated


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


# ---------------------------------------------------------------- batch norm
def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dimension 1) to zero mean and unit variance, then scale and shift.

    Training uses the batch statistics (biased variance) and updates ``running_mean`` and
    ``running_var`` in place with ``momentum`` (the running variance takes the unbiased batch
    variance); evaluation uses the running statistics, as one pass ``x * scale + shift``.

    >>> import convscope as cs
    >>> mean, var = cs.zeros(1), cs.ones(1)
    >>> y = batch_norm(cs.tensor([[1.0], [3.0]]), mean, var, training=True)
    >>> [round(v, 4) for v in y.flatten().tolist()]
    [-1.0, 1.0]
    >>> [round(v, 4) for v in mean.tolist() + var.tolist()]
    [0.2, 1.1]
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


#: the graph node of a batch norm with a fused activation is named after the activation, the
#: last operation of the pair, as in PyTorch's graph
_FUSED_NAMES = {"relu": "Relu", "relu6": "Hardtanh"}


def _batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    training: bool,
    momentum: float,
    eps: float,
    activation: str | None = None,
) -> Tensor:
    """:func:`batch_norm`, with batch statistics optionally followed by ``activation``
    (``"relu"``, ``"relu6"``) as one fused operation (``nn.fusion`` uses it in training)."""
    x = _tensor_arg(input, "input", "batch_norm")
    _dim(1, x.ndim)
    if training:
        _verify_batch_size(x.shape)
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    _require_float(x, "batch_norm")
    channels = x.shape[1]
    stats = {"running_mean": running_mean, "running_var": running_var}
    params = {"weight": weight, "bias": bias}
    for name, value in (*stats.items(), *params.items()):
        size = channels if value is None else _array(value, name, "batch_norm").size
        if size != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {size}")
    w, b = (_optional(params[k], k, "batch_norm") for k in params)
    rm, rv = (_optional(stats[k], k, "batch_norm") for k in stats)
    _check_dtypes(x, w, b, rm, rv)
    if not training:
        for name, value in stats.items():
            if value is None:
                raise RuntimeError(f"{name} must be defined in evaluation mode")
        if x.numel() == 0:
            return _empty(x, w, b)
        return norm.channel_affine(x, _channels_view(x), rm.data, rv.data, w, b, eps)
    if x.numel() == 0:
        return _empty(x, w, b)
    x3 = _channels_view(x)
    units = norm.Units("channels")
    if activation is not None and not training:
        raise ValueError("a fused activation needs batch statistics")
    name = _FUSED_NAMES[activation] if activation is not None else "NativeBatchNorm"
    y, mean, var = norm.normalize(x, x3, units, w, b, eps, name=name, activation=activation)
    count = x3.shape[0] * x3.shape[2]
    if running_mean is not None:
        _update_running(running_mean, mean, momentum)
    if running_var is not None:
        _update_running(running_var, var * (count / (count - 1)), momentum)
    return y


# ---------------------------------------------------------------- instance norm
def instance_norm(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise every channel of every sample over its own spatial positions.

    With ``use_input_stats=False`` the running statistics are used instead (an
    ``InstanceNorm`` in evaluation mode that tracks them); otherwise given running statistics
    are updated with the average over the batch of the per-sample statistics.

    >>> import convscope as cs
    >>> y = instance_norm(cs.tensor([[[1.0, 3.0], [5.0, 5.0]]]))
    >>> [[round(v, 3) for v in row] for row in y[0].tolist()]
    [[-1.0, 1.0], [0.0, 0.0]]
    """
    x = _tensor_arg(input, "input", "instance_norm")
    if use_input_stats and math.prod(x.shape[2:]) == 1:
        raise ValueError(
            "Expected more than 1 spatial element when training, got input size "
            f"torch.Size({list(x.shape)})"
        )
    _dim(1, x.ndim)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    if not use_input_stats and running_mean is None:
        raise RuntimeError(
            "Expected running_mean and running_var to be defined when use_input_stats is false"
        )
    _require_float(x, "batch_norm")
    batch, channels = x.shape[:2]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is not None:
            size = _array(value, name, "instance_norm").size
            if size != channels:
                raise RuntimeError(
                    f"{name} should contain {batch * channels} elements not {batch * size}"
                )
    w, b = _optional(weight, "weight", "instance_norm"), _optional(bias, "bias", "instance_norm")
    _check_dtypes(x, w, b)
    if x.numel() == 0:
        return _empty(x, w, b)
    x3 = _channels_view(x)
    if not use_input_stats:
        rm = _array(running_mean, "running_mean", "instance_norm")
        rv = _array(running_var, "running_var", "instance_norm")
        return norm.channel_affine(x, x3, rm, rv, w, b, eps)
    y, mean, var = norm.normalize(x, x3, norm.Units("rows"), w, b, eps, name="NativeBatchNorm")
    if running_mean is not None:
        count = x3.shape[2]
        _update_running(running_mean, mean.mean(axis=0), momentum)
        _update_running(running_var, (var * (count / (count - 1))).mean(axis=0), momentum)
    return y


# ---------------------------------------------------------------- group norm
def group_norm(
    input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Tensor:
    """Split the channels into ``num_groups`` groups and normalise each group of each sample;
    ``weight`` and ``bias`` are per channel.

    >>> import convscope as cs
    >>> y = group_norm(cs.tensor([[1.0, 3.0, 10.0, 20.0]]), 2)
    >>> [round(v, 3) for v in y.flatten().tolist()]
    [-1.0, 1.0, -1.0, 1.0]
    """
    x = _tensor_arg(input, "input", "group_norm")
    if isinstance(num_groups, bool) or not isinstance(num_groups, int | np.integer):
        raise TypeError(
            "group_norm(): argument 'num_groups' (position 2) must be int, not "
            f"{type(num_groups).__name__}"
        )
    num_groups = int(num_groups)
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    batch, channels = x.shape[:2]
    _verify_batch_size([batch * channels // num_groups, num_groups, *x.shape[2:]])
    if num_groups <= 0:
        raise RuntimeError(f"Expected num groups to be greater than 0, got {num_groups}")
    if channels % num_groups:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input "
            f"of shape {_shape_text(x.shape)} and num_groups={num_groups}"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and _array(value, name, "group_norm").size != channels:
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {_shape_text(np.shape(value))} and input of "
                f"shape {_shape_text(x.shape)}"
            )
    _require_float(x, "GroupNormKernelImpl")
    w, b = _optional(weight, "weight", "group_norm"), _optional(bias, "bias", "group_norm")
    _check_dtypes(x, w, b)
    if x.numel() == 0:
        return _empty(x, w, b)
    units = norm.Units("groups", num_groups)
    return norm.normalize(x, _channels_view(x), units, w, b, eps, name="NativeGroupNorm")[0]


# ---------------------------------------------------------------- layer norm
def layer_norm(
    input: Any,
    normalized_shape: Sequence[int],
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dimensions of every leading index;
    ``weight`` and ``bias`` have shape ``normalized_shape`` (elementwise affine).

    >>> import convscope as cs
    >>> x = cs.tensor([[[0.0, 2.0], [4.0, 6.0]]])
    >>> [round(v, 4) for v in layer_norm(x, (2, 2)).flatten().tolist()]
    [-1.3416, -0.4472, 0.4472, 1.3416]
    """
    x = _tensor_arg(input, "input", "layer_norm")
    if isinstance(normalized_shape, int | np.integer):
        raise TypeError(
            "layer_norm(): argument 'normalized_shape' (position 2) must be tuple of ints, not "
            f"{type(normalized_shape).__name__}"
        )
    shape = tuple(int(s) for s in normalized_shape)
    if not shape:
        raise RuntimeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at least "
            "one element, but got normalized_shape = []"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(np.shape(_array(value, name, "layer_norm"))) != shape:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                f"shape {_shape_text(np.shape(value))} and normalized_shape = {_shape_text(shape)}"
            )
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape) :]) != shape:
        raise RuntimeError(
            f"Given normalized_shape={_shape_text(shape)}, expected input with shape "
            f"[*, {', '.join(str(s) for s in shape)}], but got input of size"
            f"{_shape_text(x.shape)}"
        )
    _require_float(x, "LayerNormKernelImpl")
    w, b = _optional(weight, "weight", "layer_norm"), _optional(bias, "bias", "layer_norm")
    _check_dtypes(x, w, b)
    if x.numel() == 0:
        return _empty(x, w, b)
    x3 = np.ascontiguousarray(x.data).reshape(-1, 1, math.prod(shape))
    units = norm.Units("rows")
    return norm.normalize(x, x3, units, w, b, eps, columns=True, name="NativeLayerNorm")[0]


# ---------------------------------------------------------------- local response norm
def local_response_norm(
    input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """Divide every value by ``(k + alpha * mean of the squares over size channels) ** beta``:
    the window around channel ``c`` is ``[c - size // 2, c + (size - 1) // 2]``, padded with
    zeros, and the mean always divides by ``size`` (AlexNet's LRN).

    >>> import convscope as cs
    >>> y = local_response_norm(cs.ones(1, 3, 1), 3, alpha=3.0, beta=1.0)
    >>> [round(v, 4) for v in y.flatten().tolist()]
    [0.3333, 0.25, 0.3333]
    """
    x = _tensor_arg(input, "input", "local_response_norm")
    if x.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {x.ndim} dimensions)")
    if x.numel() == 0:
        return x
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise TypeError(f"local_response_norm(): size must be an int, not {type(size).__name__}")
    if size <= 0:
        window = f"kH: {size} kW: 1" if x.ndim == 3 else f"kT: {size} kH: 1 kW: 1"
        raise RuntimeError(f"kernel size should be greater than zero, but got {window}")
    if x.dtype.kind in "iu":  # an integer mean of the squares, a float result (as torch)
        x3 = np.ascontiguousarray(x.data).reshape(x.shape[0], x.shape[1], -1)
        dtype = _dtypes.get_default_dtype()
        y = norm_ops.local_response_norm_integer(x3, int(size), alpha, beta, k, dtype)
        return Tensor(y.reshape(x.shape))
    _require_float(x, "local_response_norm")
    return norm.local_response_norm(x, int(size), alpha, beta, k)


__all__ = ["batch_norm", "group_norm", "instance_norm", "layer_norm", "local_response_norm"]
