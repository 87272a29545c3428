"""Functional convolutions and padding with PyTorch's signatures.

Each function validates its arguments with PyTorch's exception classes (``RuntimeError`` for
shapes and values, ``TypeError`` for wrong types), then calls the one N-d primitive
:func:`convscope.ops.conv.conv_general`.  Inputs may be ``Tensor`` or NumPy arrays.

>>> import convscope as cs
>>> import convscope.nn.functional as F
>>> x = cs.tensor([[[1, 2, 0, 3, 1]]])
>>> F.conv1d(x, cs.tensor([[[1, 0, -1]]]), padding="same").tolist()
[[[-2, 1, -1, -1, 3]]]
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtypes, geometry
from ..autograd import conv as _autograd
from ..autograd import functions as _fn
from ..autograd import nn_ops as _nn_ops
from ..autograd.engine import is_grad_enabled
from ..ops import pool as _pool
from ..ops.pad import MODES as PAD_MODES
from ..ops.tiling import ConvGeometry
from ..random import default_generator
from ..tensor import Tensor

_SUPPORTED_KINDS = "fiu"


def _array(value: Any, name: str, op: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(
        f"{op}(): argument '{name}' must be Tensor (or numpy.ndarray), not {type(value).__name__}"
    )


def _check_dtypes(op: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    if x.dtype.kind not in _SUPPORTED_KINDS:
        raise NotImplementedError(f"{op}: convolution is not implemented for dtype {x.dtype}")
    if w.dtype != x.dtype:
        raise RuntimeError(
            f"{op}: input dtype ({x.dtype}) and weight dtype ({w.dtype}) should be the same"
        )
    if b is not None and b.dtype != x.dtype:
        raise RuntimeError(
            f"{op}: input dtype ({x.dtype}) and bias dtype ({b.dtype}) should be the same"
        )


def _check_argument_types(
    op: str, stride: Any, padding: Any, dilation: Any, groups: Any, output_padding: Any
) -> None:
    """Type errors first, before any value is looked at (PyTorch parses arguments first)."""
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise TypeError(f"{op}(): argument 'groups' must be int, not {type(groups).__name__}")
    for name, value in (
        ("stride", stride),
        ("dilation", dilation),
        ("output_padding", output_padding or 0),
    ):
        geometry.check_int_sequence(value, name, op)
    if isinstance(padding, str):
        if output_padding is not None:
            geometry.transpose_pads(padding, 0, op)  # raises the TypeError
    elif geometry.is_per_side(padding):
        for pair in padding:
            geometry.check_int_sequence(pair, "padding", op)
    else:
        geometry.check_int_sequence(padding, "padding", op)


def _check_shapes(
    op: str,
    n: int,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    groups: int,
    transposed: bool,
) -> None:
    if x.ndim not in (n + 1, n + 2):
        raise RuntimeError(
            f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {op}, but got input of "
            f"size: {list(x.shape)}"
        )
    if w.ndim != n + 2:
        layout = (
            "(in_channels, out_channels/groups"
            if transposed
            else "(out_channels, in_channels/groups"
        )
        raise RuntimeError(
            f"{op} expects a {n + 2}-D weight {layout}, *kernel_size), but got weight of size "
            f"{list(w.shape)}"
        )
    if groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported, but got groups={groups}")
    if w.shape[0] < 1 or w.shape[0] % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} and at least 1 at "
            f"dimension 0, but got weight of size {list(w.shape)} instead"
        )
    channels = x.shape[-n - 1]
    expected = w.shape[0] if transposed else w.shape[1] * groups
    out_channels = w.shape[1] * groups if transposed else w.shape[0]
    if channels != expected:
        raise RuntimeError(
            f"Given {'transposed=1' if transposed else f'groups={groups}'}, weight of size "
            f"{list(w.shape)}, expected input{list(x.shape)} to have {expected} channels, but got "
            f"{channels} channels instead"
        )
    if b is not None and b.shape != (out_channels,):
        raise RuntimeError(
            f"Given {'transposed=1, ' if transposed else ''}weight of size {list(w.shape)}, "
            f"expected bias to be 1-dimensional with {out_channels} elements, but got bias of size "
            f"{list(b.shape)} instead"
        )
    if any(s == 0 for s in x.shape[-n:]):
        raise RuntimeError(
            "Only zero batch or zero channel inputs are supported, but got input shape: "
            f"{list(x.shape)}"
        )


def _convolve(
    op: str,
    n: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    output_padding: Any = None,
) -> Tensor:
    """Validate, then compute a (transposed when ``output_padding`` is given) convolution."""
    transposed = output_padding is not None
    x, w = _array(input, "input", op), _array(weight, "weight", op)
    b = None if bias is None else _array(bias, "bias", op)
    _check_argument_types(op, stride, padding, dilation, groups, output_padding)
    stride_t = geometry.ntuple(stride, n, "stride", op)
    dilation_t = geometry.ntuple(dilation, n, "dilation", op)
    if transposed:
        pads = geometry.transpose_pads(padding, n, op)
        out_pad = geometry.ntuple(output_padding, n, "output_padding", op)
    else:
        norm_padding = geometry.normalize_padding(padding, n, op)
    _check_shapes(op, n, x, w, b, groups, transposed)
    _check_dtypes(op, x, w, b)
    kernel = w.shape[2:]
    geometry.check_stride_dilation(stride_t, dilation_t)
    geometry.check_kernel(kernel)
    batched = _as_tensor(input)
    if x.ndim == n + 1:
        batched = batched.unsqueeze(0)
    spatial = batched.shape[2:]
    weight_t = _as_tensor(weight)
    if transposed:
        geometry.check_output_padding(out_pad, stride_t, dilation_t)
        geometry.conv_transpose_output_size(spatial, kernel, stride_t, pads, out_pad, dilation_t)
        conv_pads, input_dilation = geometry.transpose_as_conv(
            kernel, stride_t, pads, out_pad, dilation_t
        )
        y = _autograd.conv(
            batched,
            _autograd.transpose_kernel(weight_t, groups),
            stride=(1,) * n,
            padding=conv_pads,
            dilation=dilation_t,
            input_dilation=input_dilation,
            groups=groups,
        )
    else:
        pads = geometry.resolve_padding(norm_padding, spatial, kernel, stride_t, dilation_t)
        geometry.conv_output_size(spatial, kernel, stride_t, pads, dilation_t)
        y = _autograd.conv(
            batched, weight_t, stride=stride_t, padding=pads, dilation=dilation_t, groups=groups
        )
    if b is not None:
        y = y + _as_tensor(bias).reshape((-1,) + (1,) * n)
    return y if x.ndim == n + 2 else y.squeeze(0)


def _check_fill_value(value: Any, dtype: np.dtype) -> None:
    """PyTorch refuses a constant that overflows the tensor's dtype; so do we."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        ok = math.isfinite(value) and info.min <= value <= info.max
    elif dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        number = float(value)
        ok = not math.isfinite(number) or -limit <= number <= limit
    else:
        ok = True
    if not ok:
        raise RuntimeError(f"value cannot be converted to type {dtype} without overflow: {value}")


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution over ``(N, C, L)`` or ``(C, L)``; padding also takes 'causal'.

    >>> import convscope as cs
    >>> conv1d(cs.ones(1, 1, 4), cs.ones(1, 1, 2), padding="causal").tolist()
    [[[1.0, 2.0, 2.0, 2.0]]]
    """
    return _convolve("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution over ``(N, C, H, W)`` or ``(C, H, W)``.

    >>> import convscope as cs
    >>> conv2d(cs.ones(1, 1, 4, 4), cs.ones(1, 1, 3, 3), stride=2, padding="same").shape
    (1, 1, 2, 2)
    """
    return _convolve("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """3-D convolution over ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> import convscope as cs
    >>> conv3d(cs.ones(1, 2, 3, 3, 3), cs.ones(4, 2, 3, 3, 3)).shape
    (1, 4, 1, 1, 1)
    """
    return _convolve("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """1-D transposed convolution; weight ``(in, out/groups, k)``.

    >>> import convscope as cs
    >>> conv_transpose1d(cs.ones(1, 1, 3), cs.ones(1, 1, 2), stride=2).tolist()
    [[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]]
    """
    return _convolve(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        output_padding,
    )


def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """2-D transposed convolution; weight ``(in, out/groups, kH, kW)``.

    >>> import convscope as cs
    >>> conv_transpose2d(cs.ones(1, 16, 8, 8), cs.ones(16, 8, 2, 2), stride=2).shape
    (1, 8, 16, 16)
    """
    return _convolve(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        output_padding,
    )


def conv_transpose3d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """3-D transposed convolution; weight ``(in, out/groups, kD, kH, kW)``.

    >>> import convscope as cs
    >>> conv_transpose3d(cs.ones(1, 2, 2, 2, 2), cs.ones(2, 3, 3, 3, 3)).shape
    (1, 3, 4, 4, 4)
    """
    return _convolve(
        "conv_transpose3d",
        3,
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        output_padding,
    )


def pad(input, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions; ``pad`` lists the last dimension first.

    ``(left, right)`` pads the last dimension, ``(left, right, top, bottom)`` the last two, and
    so on.  Negative amounts crop.  Modes: constant, reflect, replicate, circular.

    >>> import convscope as cs
    >>> pad(cs.tensor([[1, 2, 3]]), (2, 1), mode="reflect").tolist()
    [[3, 2, 1, 2, 3, 2]]
    """
    x = _array(input, "input", "pad")
    geometry.check_int_sequence(tuple(pad), "pad", "pad")
    if mode not in PAD_MODES:
        raise NotImplementedError(
            f"Unrecognised padding mode {mode} (expected one of {', '.join(PAD_MODES)})"
        )
    amounts = tuple(pad)
    geometry._check_ints(amounts, "pad", "pad")
    if len(amounts) % 2:
        raise RuntimeError(f"Padding length must be divisible by 2, but got pad={list(amounts)}")
    dims = len(amounts) // 2
    if dims > x.ndim:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but "
            f"got padding length {len(amounts)} and input of dimension {x.ndim}"
        )
    if mode != "constant":
        if value is not None and value != 0:
            raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
        if not 1 <= dims <= 3 or x.ndim not in (dims + 1, dims + 2):
            raise NotImplementedError(
                f"Padding size {len(amounts)} is not supported for {x.ndim}D input tensor: "
                f"{mode} padding of the last k dimensions needs a (k+1)-D or (k+2)-D input, k <= 3"
            )
        non_batch = x.shape[1:] if x.ndim == dims + 2 else x.shape
        if 0 in non_batch and mode != "circular":
            raise RuntimeError(
                f"Expected {dims + 1}D or {dims + 2}D (batch mode) tensor with possibly 0 batch "
                f"size and other non-zero dimensions for input, but got: {list(x.shape)}"
            )
    if value is not None and any(a > 0 for a in amounts):
        _check_fill_value(value, x.dtype)
    pairs = [(amounts[2 * i], amounts[2 * i + 1]) for i in reversed(range(dims))]
    return _autograd.pad(_as_tensor(input), pairs, mode, 0 if value is None else value)


# =====================================================================================
# CNN building blocks: linear, activations, dropout, batch norm, pooling, resampling,
# losses, flatten.  Each validates like PyTorch, then composes differentiable ops
# (``autograd.functions``) or calls one of ``autograd.nn_ops`` (pooling kernels of ``ops.pool``).
# =====================================================================================
_TORCH_TYPE_NAMES = {
    "float16": "Half",
    "float32": "Float",
    "float64": "Double",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
    "uint8": "Byte",
    "bool": "Bool",
}


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


# ---------------------------------------------------------------- linear and activations
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


# ---------------------------------------------------------------- batch normalisation
def _update_running(buffer: Any, batch: np.ndarray, momentum: float) -> None:
    array = _array(buffer, "running stats", "batch_norm")
    array *= 1 - momentum
    array += momentum * batch.reshape(array.shape)


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
    variance); evaluation uses the running statistics.

    >>> import convscope as cs
    >>> mean, var = cs.zeros(1), cs.ones(1)
    >>> y = batch_norm(cs.tensor([[1.0], [3.0]]), mean, var, training=True)
    >>> [round(v, 4) for v in y.flatten().tolist()]
    [-1.0, 1.0]
    >>> [round(v, 4) for v in mean.tolist() + var.tolist()]
    [0.2, 1.1]
    """
    x = _tensor_arg(input, "input", "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects an input of 2 or more dimensions, got {x.ndim}D")
    channels = x.shape[1]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        size = channels if value is None else _array(value, name, "batch_norm").size
        if size != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {size}")
    shape = (1, channels) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // max(channels, 1)
        if count <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"{list(x.shape)}"
            )
        axes = (0, *range(2, x.ndim))
        mean = x.mean(axes, keepdim=True)
        var = x.var(axes, unbiased=False, keepdim=True)
        if running_mean is not None:
            _update_running(running_mean, mean.data, momentum)
        if running_var is not None:
            _update_running(running_var, var.data * (count / (count - 1)), momentum)
    elif running_mean is None or running_var is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    else:
        mean = _as_tensor(running_mean).reshape(shape)
        var = _as_tensor(running_var).reshape(shape)
    y = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * _as_tensor(weight).reshape(shape)
    if bias is not None:
        y = y + _as_tensor(bias).reshape(shape)
    return y


# ---------------------------------------------------------------- pooling
_MAX_POOL_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")
_AVG_POOL_DTYPES = ("float16", "float32", "float64", "int64")


def _pool_tuple(value: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    geometry.check_int_sequence(value, name, op)
    values = tuple(value) if isinstance(value, Sequence) else (value,)
    if len(values) == 1:
        values *= n
    if len(values) != n:
        raise RuntimeError(f"{op}: {name} must either be a single int, or a tuple of {n} ints")
    return tuple(int(v) for v in values)


def _pool_input(op: str, n: int, input: Any, dtypes: Sequence[str]) -> Tensor:
    """The input as a tensor after PyTorch's rank, emptiness and dtype checks."""
    x = _tensor_arg(input, "input", op)
    if x.ndim not in (n + 1, n + 2) or 0 in x.shape[-n - 1 :]:
        raise RuntimeError(
            f"{op}: Expected {n + 1}D or {n + 2}D (batch mode) tensor with optional 0 dim batch "
            f"size for input, but got: {list(x.shape)}"
        )
    if x.dtype.name not in dtypes:
        raise NotImplementedError(f"\"{op}\" not implemented for '{_type_name(x.dtype)}'")
    return x


def _pool_windows(
    op: str,
    n: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    dtypes: Sequence[str],
) -> tuple[Tensor, ConvGeometry]:
    """Validate a sliding-window pooling like PyTorch; the batched input and its windows."""
    kernel = _pool_tuple(kernel_size, n, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, Sequence) and len(stride) == 0)
    strides = kernel if no_stride else _pool_tuple(stride, n, "stride", op)
    pads = _pool_tuple(padding, n, "padding", op)
    dilations = _pool_tuple(dilation, n, "dilation", op)
    x = _pool_input(op, n, input, dtypes)
    geometry.check_kernel(kernel)
    geometry.check_stride_dilation(strides, dilations)
    for p, k, d in zip(pads, kernel, dilations, strict=True):
        if p < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {p}")
        if p > k // 2:
            raise RuntimeError(
                "pad should be at most half of effective kernel size, but got "
                f"pad={p}, kernel_size={k} and dilation={d}"
            )
    batched = x if x.ndim == n + 2 else x.unsqueeze(0)
    geom = _pool.pool_geometry(batched.shape, kernel, strides, pads, dilations, ceil_mode)
    if min(geom.output_size) < 1:
        sizes = "x".join(str(s) for s in x.shape[-n - 1 :])
        out = "x".join(str(s) for s in (x.shape[-n - 1], *geom.output_size))
        raise RuntimeError(
            f"Given input size: ({sizes}). Calculated output size: ({out}). "
            "Output size is too small"
        )
    return batched, geom


def _documented(function: Any, name: str, doc: str) -> Any:
    """Name and document one per-dimension function made by a factory below."""
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


def _max_pool_nd(n: int, doc: str) -> Any:
    """``max_pool{n}d``: one N-d code path, PyTorch's signature."""
    op = f"max_pool{n}d"

    def max_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> Any:
        window = (kernel_size, stride, padding, dilation, ceil_mode)
        batched, geom = _pool_windows(op, n, input, *window, _MAX_POOL_DTYPES)
        y, where = _nn_ops.max_pool(batched, geom)
        indices = Tensor(where)
        if np.ndim(input) == n + 1:
            y, indices = y.squeeze(0), indices.squeeze(0)
        return (y, indices) if return_indices else y

    return _documented(max_pool, op, doc)


max_pool1d = _max_pool_nd(
    1,
    """Maximum over windows of ``(N, C, L)`` or ``(C, L)``; with ``return_indices`` also the
    position of each maximum in ``L``.

    >>> import convscope as cs
    >>> y, i = max_pool1d(cs.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0]]]), 2, ceil_mode=True,
    ...                   return_indices=True)
    >>> y.tolist(), i.tolist()
    ([[[5.0, 2.0, 3.0]]], [[[1, 2, 4]]])
    """,
)
max_pool2d = _max_pool_nd(
    2,
    """Maximum over windows of ``(N, C, H, W)`` or ``(C, H, W)`` (indices flat in ``H*W``).

    >>> import convscope as cs
    >>> max_pool2d(cs.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """,
)
max_pool3d = _max_pool_nd(
    3,
    """Maximum over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> from convscope import rand
    >>> max_pool3d(rand(1, 2, 6, 6, 6), 3, stride=2, padding=1).shape
    (1, 2, 3, 3, 3)
    """,
)


def _avg_pool(
    op: str,
    n: int,
    input: Any,
    window: tuple,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    kernel_size, stride, padding, ceil_mode = window
    window = (kernel_size, stride, padding, 1, ceil_mode)
    batched, geom = _pool_windows(op, n, input, *window, _AVG_POOL_DTYPES)
    size = batched.shape[2:]
    if n == 3 and any(h < k for h, k in zip(size, geom.kernel_size, strict=True)):
        # PyTorch's avg_pool3d (alone) also wants a whole kernel inside the unpadded input
        raise RuntimeError(
            f"input image (T: {size[0]} H: {size[1]} W: {size[2]}) smaller than kernel size "
            f"(kT: {geom.kernel_size[0]} kH: {geom.kernel_size[1]} kW: {geom.kernel_size[2]})"
        )
    y = _nn_ops.avg_pool(batched, geom, count_include_pad, divisor_override)
    return y.squeeze(0) if np.ndim(input) == n + 1 else y


def avg_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over windows of ``(N, C, L)`` or ``(C, L)``; ``count_include_pad=False`` divides by
    the cells inside the input only.

    >>> import convscope as cs
    >>> avg_pool1d(cs.tensor([[1.0, 2.0, 3.0]]), 2, padding=1, count_include_pad=False).tolist()
    [[1.0, 2.5]]
    """
    window = (kernel_size, stride, padding, ceil_mode)
    return _avg_pool("avg_pool1d", 1, input, window, count_include_pad, None)


def _avg_pool_nd(n: int, doc: str) -> Any:
    """``avg_pool{n}d`` for ``n`` = 2, 3 (1-D has no ``divisor_override``)."""
    op = f"avg_pool{n}d"

    def avg_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> Tensor:
        window = (kernel_size, stride, padding, ceil_mode)
        return _avg_pool(op, n, input, window, count_include_pad, divisor_override)

    return _documented(avg_pool, op, doc)


avg_pool2d = _avg_pool_nd(
    2,
    """Mean over windows of ``(N, C, H, W)`` or ``(C, H, W)``; ``divisor_override`` replaces the
    window size as divisor.

    >>> import convscope as cs
    >>> avg_pool2d(cs.ones(1, 1, 4, 4), 2, divisor_override=2).tolist()
    [[[[2.0, 2.0], [2.0, 2.0]]]]
    """,
)
avg_pool3d = _avg_pool_nd(
    3,
    """Mean over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> from convscope import ones
    >>> avg_pool3d(ones(2, 2, 2, 2), kernel_size=2).tolist()
    [[[[1.0]]], [[[1.0]]]]
    """,
)


def _int_like(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _adaptive_sizes(op: str, n: int, output_size: Any) -> tuple:
    """``output_size`` per dimension (``None`` keeps the input size, 2-D and 3-D only)."""
    many = isinstance(output_size, Sequence)
    sizes = tuple(output_size) if many else (output_size,) * n
    if not all(_int_like(s) or (s is None and many and n > 1) for s in sizes):
        raise TypeError(
            f"{op}(): argument 'output_size' must be tuple of ints, not {output_size!r}"
        )
    if len(sizes) != n:
        raise RuntimeError(f"{op}: output_size must be {n}")
    if any(s is not None and s < 0 for s in sizes):
        raise RuntimeError(
            f"{op}: elements of output_size must be greater than or equal to 0 but received {sizes}"
        )
    return sizes


def _adaptive_avg_pool(op: str, n: int, input: Any, output_size: Any) -> Tensor:
    x = _tensor_arg(input, "input", op)
    sizes = _adaptive_sizes(op, n, output_size)
    if x.ndim not in (n + 1, n + 2) or 0 in x.shape[-n - 1 :]:
        raise RuntimeError(
            f"{op}(): Expected {n + 1}D or {n + 2}D tensor with non-zero sizes for non-batch "
            f"dimensions, but got {list(x.shape)}"
        )
    _require_float(x, op)
    spatial = x.shape[-n:]
    segments = [
        _pool.adaptive_segments(h, h if s is None else s)
        for h, s in zip(spatial, sizes, strict=True)
    ]
    return _nn_ops.segment_means(x, segments, "AdaptiveAvgPool")


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Mean over ``output_size`` windows covering ``L`` (``[floor(i*L/out), ceil((i+1)*L/out))``).

    >>> import convscope as cs
    >>> adaptive_avg_pool1d(cs.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), 3).tolist()
    [[1.5, 3.0, 4.5]]
    """
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Adaptive mean over ``H, W``; a ``None`` entry keeps that size.

    >>> import convscope as cs
    >>> adaptive_avg_pool2d(cs.rand(1, 3, 7, 5), (None, 2)).shape
    (1, 3, 7, 2)
    """
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input: Any, output_size: Any) -> Tensor:
    """Adaptive mean over ``D, H, W``; ``output_size=1`` is a global average.

    >>> import convscope as cs
    >>> adaptive_avg_pool3d(cs.ones(2, 3, 4, 5), 1).tolist()
    [[[[1.0]]], [[[1.0]]]]
    """
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)


# ---------------------------------------------------------------- resampling
def _per_dim(value: Any, n: int, name: str, x: Tensor) -> list:
    if not isinstance(value, Sequence):
        return [value] * n
    if len(value) != n:
        raise ValueError(
            f"Input and {name} must have the same number of spatial dimensions, but got input "
            f"with spatial dimensions of {list(x.shape[2:])} and {name} of {value}."
        )
    return list(value)


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resample ``(N, C, *spatial)`` to ``size`` or by ``scale_factor`` (``'nearest'`` and
    ``'nearest-exact'``), choosing source cells exactly as PyTorch does.

    >>> import convscope as cs
    >>> interpolate(cs.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    x = _tensor_arg(input, "input", "interpolate")
    n = x.ndim - 2
    if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
        raise ValueError(
            "align_corners option can only be set with the interpolating modes: "
            "linear | bilinear | bicubic | trilinear"
        )
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = _per_dim(size, n, "output size", x)
        if not all(_int_like(s) for s in sizes):
            raise TypeError(
                "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                f"Tuple[int, int, int], but got size with types {[type(s) for s in sizes]}"
            )
        scales = [None] * n
    elif scale_factor is not None:
        scales = _per_dim(scale_factor, n, "scale_factor", x)
        sizes = [math.floor(h * float(s)) for h, s in zip(x.shape[2:], scales, strict=True)]
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if recompute_scale_factor:
        scales = [None] * n
    if antialias:
        raise ValueError(
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and "
            "requires a 4-D tensor as input"
        )
    if mode not in ("nearest", "nearest-exact") or not 1 <= n <= 3:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: nearest | nearest-exact (got {mode}); convscope implements only these two"
        )
    if min(sizes) <= 0 or min(x.shape[2:]) <= 0:
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input "
            f"{tuple(x.shape[2:])} and output {tuple(sizes)}"
        )
    segments = [
        _pool.nearest_segments(h, o, s, exact=mode == "nearest-exact", shortcuts=n == 2)
        for h, o, s in zip(x.shape[2:], sizes, scales, strict=True)
    ]
    return _nn_ops.segment_means(x, segments, "UpsampleNearest")


# ---------------------------------------------------------------- losses
_REDUCTIONS = ("none", "mean", "sum")


def _reduction(
    size_average: bool | None, reduce: bool | None, reduction: str, stacklevel: int = 3
) -> str:
    """The reduction, from the deprecated ``size_average``/``reduce`` pair when given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(
            "size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            UserWarning,
            stacklevel=stacklevel,
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _ratio(total: Tensor, denominator: Any) -> Tensor:
    """``total / denominator``; NaN (with zero gradient) when nothing was counted, as PyTorch."""
    if denominator == 0:
        return total * 0.0 + math.nan
    return total / denominator


def _class_weight(weight: Any, classes: int, op: str) -> np.ndarray | None:
    if weight is None:
        return None
    w = _array(weight, "weight", op)
    if w.shape != (classes,):
        raise RuntimeError(
            f"weight tensor should be defined either for all {classes} classes or no classes "
            f"but got weight tensor of shape: {list(w.shape)}"
        )
    return w


def _class_targets(x: Tensor, target: np.ndarray, ignore_index: int, op: str) -> np.ndarray:
    """Check class-index targets against ``x``; the mask of targets that count."""
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if x.ndim > 1 and target.ndim > 0 and target.shape[0] != x.shape[0]:
        raise ValueError(
            f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
            f"({target.shape[0]})."
        )
    expected = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if target.shape != expected:
        if x.ndim <= 2:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")
    if target.dtype.name not in ("int64", "uint8"):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_type_name(target.dtype)}"
        )
    counted = target != ignore_index
    bad = target[counted & ((target < 0) | (target >= x.shape[min(1, x.ndim - 1)]))]
    if bad.size:
        raise IndexError(f"Target {bad.flat[0]} is out of bounds.")
    return counted


def _nll(
    log_probs: Tensor, target: np.ndarray, weight: Any, ignore_index: int, reduction: str, op: str
) -> Tensor:
    class_dim = min(1, log_probs.ndim - 1)
    counted = _class_targets(log_probs, target, ignore_index, op)
    w = _class_weight(weight, log_probs.shape[class_dim] if log_probs.ndim else 0, op)
    safe = np.where(counted, target, 0).astype(np.int64)
    picked_weight = (counted if w is None else w[safe] * counted).astype(log_probs.dtype)
    grid = np.indices(safe.shape, sparse=True)
    loss = -(log_probs[(*grid[:class_dim], safe, *grid[class_dim:])] * picked_weight)
    if reduction != "mean":
        return _reduce(loss, reduction)
    return _ratio(loss.sum(), picked_weight.sum())


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class-index targets: ``-weight[t] * input[n, t, ...]``.

    ``input`` holds log-probabilities ``(N, C, d1, ...)`` or ``(C,)``; targets equal to
    ``ignore_index`` count nothing; ``'mean'`` divides by the sum of the counted weights.

    >>> import convscope as cs
    >>> nll_loss(cs.tensor([[-1.0, -2.0], [-3.0, -4.0]]), cs.tensor([1, 0])).item()
    2.5
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "input", "nll_loss")
    t = _array(target, "target", "nll_loss")
    return _nll(x, t, weight, ignore_index, reduction, "nll_loss")


def _soft_cross_entropy(
    x: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str, smoothing: float
) -> Tensor:
    """Cross entropy against class probabilities (``target`` shaped like ``input``)."""
    t = _as_tensor(target)
    if t.dtype.kind != "f":
        raise RuntimeError(
            "Expected floating point type for target with class probabilities, got "
            f"{_type_name(t.dtype)}"
        )
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")
    class_dim = min(1, x.ndim - 1)
    classes = x.shape[class_dim]
    w = _class_weight(weight, classes, "cross_entropy")
    if smoothing > 0:
        t = t * (1 - smoothing) + smoothing / classes
    terms = _fn.log_softmax(x, class_dim) * t
    if w is not None:
        terms = terms * w.reshape((-1,) + (1,) * (x.ndim - class_dim - 1))
    loss = -terms.sum(class_dim)
    if reduction != "mean":
        return _reduce(loss, reduction)
    return _ratio(loss.sum(), x.numel() // max(classes, 1))


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits ``(N, C, d1, ...)`` or ``(C,)`` against class indices (or class
    probabilities shaped like ``input``), with PyTorch's weights, ``ignore_index`` and label
    smoothing (``(1 - s) * nll + s/C * sum of -log p``, normalised like the nll term).

    >>> import convscope as cs
    >>> round(cross_entropy(cs.tensor([[0.0, 0.0]]), cs.tensor([1])).item(), 4)
    0.6931
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "input", "cross_entropy")
    t = _array(target, "target", "cross_entropy")
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if t.shape == x.shape:
        return _soft_cross_entropy(x, target, weight, ignore_index, reduction, label_smoothing)
    class_dim = min(1, x.ndim - 1)
    log_probs = _fn.log_softmax(x, class_dim) if x.ndim else x
    nll = _nll(log_probs, t, weight, ignore_index, reduction, "cross_entropy")
    if label_smoothing <= 0.0:
        return nll
    classes = x.shape[class_dim]
    counted = t != ignore_index
    w = _class_weight(weight, classes, "cross_entropy")
    per_class = log_probs
    if w is not None:
        per_class = per_class * w.reshape((-1,) + (1,) * (x.ndim - class_dim - 1))
    smooth = _fn.where(counted, -per_class.sum(class_dim), 0.0)
    if reduction == "mean":
        counted_weight = counted.sum() if w is None else w[t[counted]].sum()
        smooth = _ratio(smooth.sum(), counted_weight)
    else:
        smooth = _reduce(smooth, reduction)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / classes)


def mse_loss(
    input: Any,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    """Squared error ``(input - target)**2``, optionally weighted element-wise.

    >>> import convscope as cs
    >>> mse_loss(cs.tensor([1.0, 2.0]), cs.tensor([2.0, 4.0])).item()
    2.5
    """
    x, t = _tensor_arg(input, "input", "mse_loss"), _tensor_arg(target, "target", "mse_loss")
    if t.shape != x.shape:
        warnings.warn(
            f"Using a target size ({list(t.shape)}) that is different to the input size "
            f"({list(x.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=2,
        )
    reduction = _reduction(size_average, reduce, reduction)
    _check_broadcast(x.shape, t.shape)
    diff = x - t
    loss = diff * diff
    if weight is None:
        return _reduce(loss, reduction)
    w = _tensor_arg(weight, "weight", "mse_loss")
    if w.shape != x.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = loss * w
    return loss.sum() / w.sum() if reduction == "mean" else _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross entropy of ``sigmoid(input)``, computed stably from the logits:
    ``(1 - t) * x - (1 + (pos_weight - 1) * t) * log_sigmoid(x)``, times ``weight``.

    >>> import convscope as cs
    >>> round(binary_cross_entropy_with_logits(cs.tensor([0.0]), cs.tensor([1.0])).item(), 4)
    0.6931
    """
    reduction = _reduction(size_average, reduce, reduction)
    op = "binary_cross_entropy_with_logits"
    x, t = _tensor_arg(input, "input", op), _tensor_arg(target, "target", op)
    if t.shape != x.shape:
        raise ValueError(
            f"Target size ({list(t.shape)}) must be the same as input size ({list(x.shape)})"
        )
    log_sigmoid = _nn_ops.log_sigmoid(x)
    if pos_weight is not None:
        pw = _tensor_arg(pos_weight, "pos_weight", op)
        _check_broadcast(pw.shape, t.shape)
        log_sigmoid = log_sigmoid * ((pw - 1) * t + 1)
    loss = (1 - t) * x - log_sigmoid
    if weight is not None:
        w = _tensor_arg(weight, "weight", op)
        _check_broadcast(loss.shape, w.shape)
        loss = loss * w
    return _reduce(loss, reduction)
