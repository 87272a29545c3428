"""Convolutions and padding: validation with PyTorch's errors, then the one N-d primitive."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import geometry
from ...autograd import conv as _autograd
from ...ops.pad import MODES as PAD_MODES
from ...tensor import Tensor

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
    """Validate, then compute a (transposed when ``output_padding`` is given) convolution.

    The validated, resolved arguments are remembered per call signature (shapes, dtypes and
    the arguments with their types), so a layer called again on inputs of the same shape
    skips straight to the arithmetic.
    """
    transposed = output_padding is not None
    x, w = _array(input, "input", op), _array(weight, "weight", op)
    b = None if bias is None else _array(bias, "bias", op)
    key = _signature(op, x, w, b, stride, padding, dilation, groups, output_padding)
    plan = _PLANS.get(key) if key is not None else None
    if plan is None:
        plan = _resolve(op, n, x, w, b, stride, padding, dilation, groups, output_padding)
        if key is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.pop(next(iter(_PLANS)))
            _PLANS[key] = plan
    batched = _as_tensor(input)
    if x.ndim == n + 1:
        batched = batched.unsqueeze(0)
    weight_t = _as_tensor(weight)
    if transposed:
        weight_t = _autograd.transpose_kernel(weight_t, groups)
    # the bias (its dtype is the input's: checked) is added in place on the fresh output
    bias_t = None if b is None else _as_tensor(bias)
    y = _autograd.conv(batched, weight_t, groups=groups, bias=bias_t, **plan)
    return y if x.ndim == n + 2 else y.squeeze(0)


_PLANS: dict[tuple, dict[str, Any]] = {}
_MAX_PLANS = 4096


def _frozen(value: Any) -> Any:
    """``value`` with its type, hashable; ``None`` stands for "not cacheable" (lists...)."""
    if type(value) is tuple and all(
        v is None or type(v) is int or (type(v) is tuple and all(type(i) is int for i in v))
        for v in value
    ):
        # the usual case, made fast: a module's arguments (int tuples, ints and None)
        return ("plain", value)
    if isinstance(value, tuple):
        parts = tuple(_frozen(v) for v in value)
        return None if any(p is None for p in parts) else (tuple, parts)
    if isinstance(value, (int, str)) or value is None:
        return (type(value), value)
    return None


def _signature(
    op: str,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *arguments: Any,
) -> tuple | None:
    frozen = _frozen(arguments)
    if frozen is None:
        return None
    bias = None if b is None else (b.shape, b.dtype.str)
    return (op, x.shape, x.dtype.str, w.shape, w.dtype.str, bias, frozen)


def _resolve(
    op: str,
    n: int,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    output_padding: Any,
) -> dict[str, Any]:
    """Every check PyTorch makes, then the primitive's arguments (stride, padding pairs,
    dilation, input dilation) for this call."""
    transposed = output_padding is not None
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
    spatial = x.shape[-n:]
    if transposed:
        geometry.check_output_padding(out_pad, stride_t, dilation_t)
        geometry.conv_transpose_output_size(spatial, kernel, stride_t, pads, out_pad, dilation_t)
        conv_pads, input_dilation = geometry.transpose_as_conv(
            kernel, stride_t, pads, out_pad, dilation_t
        )
        return {
            "stride": (1,) * n,
            "padding": tuple(conv_pads),
            "dilation": dilation_t,
            "input_dilation": tuple(input_dilation),
        }
    pads = geometry.resolve_padding(norm_padding, spatial, kernel, stride_t, dilation_t)
    geometry.conv_output_size(spatial, kernel, stride_t, pads, dilation_t)
    return {"stride": stride_t, "padding": tuple(pads), "dilation": dilation_t}


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
