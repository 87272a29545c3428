"""Epilogues: what follows a convolution in a CNN, applied in place on its fresh output.

``out = act(out * scale[c] + shift[c] + residual)`` per output channel ``c``: an eval-mode
BatchNorm (``scale = weight / sqrt(running_var + eps)``, ``shift = bias - running_mean *
scale``, the convolution's own bias folded into ``shift``), an optional residual added before
the activation (ResNet's ``relu(bn(conv(x)) + identity)``), and an activation.  With numba
installed it is one parallel pass over the output; otherwise a few in-place NumPy passes, no
allocation.  Either way the separate layers' temporaries (four for BatchNorm alone) vanish.

>>> import numpy as np
>>> out = np.array([[[-2.0, 1.0]], [[3.0, 4.0]]]).reshape(1, 2, 2)
>>> apply(out, scale=np.array([1.0, 0.5]), shift=np.array([0.0, -1.0]), activation="relu")
>>> out.tolist()
[[[0.0, 1.0], [0.5, 1.0]]]
"""

from __future__ import annotations

import numpy as np

from . import elementwise, jit, threads

#: activation name -> the code the compiled kernel switches on
ACTIVATIONS = {
    None: 0,
    "relu": 1,
    "relu6": 2,
    "hardswish": 3,
    "silu": 4,
    "hardsigmoid": 5,
    "sigmoid": 6,
    "gelu": 7,
    "tanh": 8,
}

#: activations the NumPy path applies in place without a temporary
_IN_PLACE = {None, "relu", "relu6", "hardsigmoid", "tanh"}

#: activations built on exp: float32 has its own compiled pass (affine step and activation
#: block by block, exp vectorised in the loop); other dtypes use NumPy's vectorised exp after
#: the affine pass, which beats the compiled kernel's scalar one (SiLU on 2.4 M values 8 ms
#: against 21 ms)
_VIA_NUMPY_EXP = {"silu", "sigmoid"}

_BLOCK = 1 << 14  # values per block: the block and its temporary stay in L2


def batch_norm_affine(
    var: np.ndarray,
    mean: np.ndarray,
    eps: float,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    conv_bias: np.ndarray | None,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(scale, shift)`` of an eval-mode BatchNorm after a convolution with ``conv_bias``
    (``None`` where absent), computed in float64 and rounded to ``dtype``: ``scale = weight /
    sqrt(var + eps)``, ``shift = -mean * scale + conv_bias * scale + bias``.  One compiled
    call with numba (about 2 us: the dozen small NumPy operations took 8, every fused layer).

    >>> s, t = batch_norm_affine(np.array([3.0]), np.array([1.0]), 1.0, None, None, None,
    ...                          np.dtype(np.float32))
    >>> s.tolist(), t.tolist()
    ([0.5], [-0.5])
    """
    kernels = jit.kernels()
    if kernels is not None and var.ndim == mean.ndim == 1:
        scale, shift = np.empty(var.shape, dtype), np.empty(var.shape, dtype)
        nothing = np.empty(0)
        kernels.batch_norm_fold(
            var,
            mean,
            float(eps),
            nothing if weight is None else weight,
            nothing if bias is None else bias,
            nothing if conv_bias is None else conv_bias,
            scale,
            shift,
        )
        return scale, shift
    scale = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean.astype(np.float64) * scale
    if conv_bias is not None:
        shift += conv_bias.astype(np.float64) * scale
    if bias is not None:
        shift += bias
    return scale.astype(dtype), shift.astype(dtype)


def supported(activation: str | None) -> bool:
    """Whether :func:`apply` can fuse ``activation`` on this installation (the compiled
    kernel does all of :data:`ACTIVATIONS`, NumPy the ones that need no temporary)."""
    if activation not in ACTIVATIONS:
        return False
    return activation in _IN_PLACE or jit.kernels() is not None


def apply(
    out: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    shift: np.ndarray | None = None,
    residual: np.ndarray | None = None,
    activation: str | None = None,
) -> None:
    """``out[:] = activation(out * scale + shift + residual)`` in place, per channel (axis 1).

    ``scale`` and ``shift`` are ``(C,)`` (either may be ``None``), ``residual`` has
    ``out``'s shape. ``out`` must be C-contiguous floating point.
    """
    if not supported(activation):
        raise ValueError(f"epilogue activation {activation!r} is not supported here")
    n, c = out.shape[:2]
    dtype = out.dtype
    scale = None if scale is None else np.ascontiguousarray(scale, dtype=dtype)
    shift = None if shift is None else np.ascontiguousarray(shift, dtype=dtype)
    if residual is not None:
        residual = np.ascontiguousarray(residual, dtype=dtype)
    kernels = jit.kernels()
    if kernels is not None and out.flags.c_contiguous and out.size:
        planes = out.reshape(n * c, -1)
        ones = np.ones(c, dtype) if scale is None else scale
        zeros = np.zeros(c, dtype) if shift is None else shift
        extra = planes if residual is None else residual.reshape(n * c, -1)
        if activation in _VIA_NUMPY_EXP and dtype == np.float32:
            added, silu = residual is not None, activation == "silu"
            jit.call("epilogue_logistic_f32", planes, ones, zeros, extra, added, silu)
            return
        later = activation in _VIA_NUMPY_EXP or (activation == "gelu" and dtype == np.float32)
        if not later or scale is not None or shift is not None or residual is not None:
            jit.call(
                "epilogue",
                planes,
                ones,
                zeros,
                extra,
                residual is not None,
                ACTIVATIONS[None if later else activation],
            )
        if later and activation == "gelu":
            elementwise.gelu(out, out=out)
        elif later:
            _exp_activation(out.reshape(-1), activation)
        return
    view = (1, c) + (1,) * (out.ndim - 2)
    if scale is not None:
        np.multiply(out, scale.reshape(view), out=out)
    if shift is not None:
        np.add(out, shift.reshape(view), out=out)
    if residual is not None:
        np.add(out, residual, out=out)
    if activation == "relu":
        np.maximum(out, 0, out=out)
    elif activation == "relu6":
        np.clip(out, 0, 6, out=out)
    elif activation == "hardsigmoid":
        np.add(out, 3, out=out)
        np.clip(out, 0, 6, out=out)
        np.divide(out, 6, out=out)
    elif activation == "tanh":
        np.tanh(out, out=out)


def _exp_activation(flat: np.ndarray, activation: str) -> None:
    """SiLU or sigmoid of the contiguous ``flat`` in place: float32 through the compiled
    :func:`~convscope.ops.elementwise.logistic`, else in cache-sized blocks spread over the
    threads (each with its own small temporary)."""
    if flat.dtype == np.float32 and jit.kernels() is not None:
        elementwise.logistic(flat, silu=activation == "silu", out=flat)
        return

    def work(part: slice) -> None:
        values = flat[part]
        scratch = np.empty(min(_BLOCK, values.size), values.dtype)
        with np.errstate(over="ignore"):
            for start in range(0, values.size, _BLOCK):
                block = values[start : start + _BLOCK]
                tmp = scratch[: block.size]
                np.negative(block, out=tmp)
                np.exp(tmp, out=tmp)
                np.add(tmp, 1, out=tmp)
                if activation == "silu":
                    np.divide(block, tmp, out=block)
                else:
                    np.divide(1, tmp, out=block)

    parts = threads.split(flat.size, threads.get_num_threads(), minimum=4 * _BLOCK)
    threads.parallel_map(work, parts)
