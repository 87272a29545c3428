"""Elementwise functions whose NumPy form makes several full-size passes.

>>> import numpy as np
>>> gelu(np.array([-1.0, 0.0, 2.0])).round(6).tolist()
[-0.158655, 0.0, 1.9545]
"""

from __future__ import annotations

import math

import numpy as np

from . import jit


def erf(values: np.ndarray) -> np.ndarray:
    """Elementwise error function in ``values``' dtype: ``scipy.special.erf`` (vectorised, the
    ``fast`` extra) when installed, else ``math.erf`` element by element (about 100 ns each)."""
    try:
        from scipy.special import erf as vectorised
    except ImportError:
        return np.frompyfunc(math.erf, 1, 1)(values).astype(values.dtype)
    return vectorised(values).astype(values.dtype, copy=False)


def gelu(
    x: np.ndarray, out: np.ndarray | None = None, bias: np.ndarray | None = None
) -> np.ndarray:
    """Exact (erf) GELU of a float array.  With numba: float32 in cache-sized blocks spread
    over the threads, each one vectorised compiled pass in float32 (a rational ``erf``, no
    ``exp``: within 2.5e-7 ``|x|`` of the exact value everywhere and 4e-7 relative from -1
    up; further down ``1 + erf`` cancels, as in torch's float32 GELU, so the error there is
    absolute, not relative); float64 in one compiled pass through libm's ``erfc``, relatively
    exact everywhere.
    Without numba, ``x * normal_cdf(x)``.  ``out`` (C-contiguous, ``x``'s shape and dtype;
    ``x`` itself is fine) receives the result.  ``bias`` (``x``'s dtype, the length of its
    last dimension) is added first, rounded as ``x + bias`` would be: a Linear layer's bias
    and its GELU in one pass over the product.

    >>> gelu(np.zeros((2, 2)), bias=np.array([0.0, 1.0])).round(4).tolist()
    [[0.0, 0.8413], [0.0, 0.8413]]
    """
    if bias is not None:
        if bias.shape != x.shape[-1:] or bias.dtype != x.dtype:
            raise ValueError(f"gelu: bias of shape {bias.shape} for an input of {x.shape}")
        if x.dtype != np.float32 or not x.flags.c_contiguous or jit.kernels() is None:
            return gelu(x + bias, out)
    kernels = jit.kernels()
    if kernels is None or x.dtype not in (np.float32, np.float64) or not x.size:
        result = (x * normal_cdf(x)).astype(x.dtype, copy=False)
        if out is None:
            return result
        out[...] = result
        return out
    source = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(source)
    elif not out.flags.c_contiguous or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"gelu: out must be C-contiguous {x.dtype} of shape {x.shape}")
    flat, target = source.reshape(-1), out.reshape(-1)
    if x.dtype == np.float64:
        jit.call("gelu", flat, target)
        return out
    _activation(flat, target, bias, 0)
    return out


def logistic(x: np.ndarray, silu: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """The logistic sigmoid ``1 / (1 + exp(-x))`` of a float array, or with ``silu`` SiLU
    ``x * sigmoid(x)``, into ``out`` (C-contiguous, ``x``'s shape and dtype; ``x`` itself is
    fine).  Float32 with numba: one compiled pass per cache-sized block, spread over the
    threads, within 3e-7 relative of the exact value; otherwise NumPy in ``x``'s dtype,
    without overflow (``exp(-|x|)`` never exceeds 1).

    >>> logistic(np.array([0.0, 2.0]), silu=True).round(6).tolist()
    [0.0, 1.761594]
    """
    if out is None:
        out = np.empty(x.shape, x.dtype)
    elif not out.flags.c_contiguous or out.shape != x.shape:
        raise ValueError(f"logistic: out must be C-contiguous of shape {x.shape}")
    kernels = jit.kernels()
    if kernels is None or x.dtype != np.float32 or not x.size:
        e = np.exp(-np.abs(x))
        s = np.where(x >= 0, 1, e) / (1 + e)
        out[...] = x * s if silu else s
        return out
    flat, target = np.ascontiguousarray(x).reshape(-1), out.reshape(-1)
    _activation(flat, target, None, 1 if silu else 2)
    return out


def _activation(flat: np.ndarray, target: np.ndarray, bias: np.ndarray | None, which: int) -> None:
    """The compiled float32 ``activation_f32`` (``which``: 0 GELU, 1 SiLU, 2 sigmoid) of the
    flat ``flat`` (plus ``bias`` per row of its length) into the flat ``target``."""
    if bias is None:
        rows, bias = flat.reshape(-1, 1), np.empty(0, np.float32)
    else:
        rows = flat.reshape(-1, bias.size)
    jit.call("activation_f32", rows, bias, target.reshape(rows.shape), which)


def scale_add_from_channels_last(
    y: np.ndarray, scale: np.ndarray, x: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``scale * y + x`` for ``y`` an ``(N, C, *spatial)`` view of a C-contiguous
    channels-last array (a ``permute`` back from ``(N, *spatial, C)``), ``x`` of the same
    shape and ``scale`` broadcastable to it (ConvNeXt's ``(C, 1, 1)`` layer scale): product
    rounded, then sum, as ``scale * y + x`` in two operations.  With numba and a scale per
    channel (or one value) one compiled pass in cache-sized tiles; else NumPy's two passes.

    >>> y = np.arange(6.0).reshape(1, 3, 2).transpose(0, 2, 1)  # (1, 2, 3) channels-last
    >>> scale_add_from_channels_last(y, np.array([[1.0], [10.0]]), np.ones((1, 2, 3))).tolist()
    [[[1.0, 3.0, 5.0], [11.0, 31.0, 51.0]]]
    """
    n, c = y.shape[:2]
    dtype = x.dtype
    if out is None:
        out = np.empty(x.shape, dtype)
    factor = np.asarray(scale, dtype=dtype)
    padded = (1,) * (y.ndim - factor.ndim) + factor.shape
    per_channel = (
        factor.ndim <= y.ndim
        and all(d == 1 for i, d in enumerate(padded) if i != 1)
        and padded[1] in (1, c)
    )
    moved = np.moveaxis(y, 1, -1)  # (N, *spatial, C): C-contiguous when y is a permuted view
    if (
        jit.kernels() is None
        or not per_channel
        or not moved.flags.c_contiguous
        or not x.flags.c_contiguous
        or not out.flags.c_contiguous
        or not (y.dtype == dtype == out.dtype)
        or dtype not in (np.float32, np.float64)
        or not y.size
    ):
        np.multiply(factor, y, out=out)
        np.add(out, x, out=out)
        return out
    factors = np.ascontiguousarray(np.broadcast_to(factor.reshape(-1), (c,)))
    jit.call(
        "scale_add_from_channels_last",
        moved.reshape(n, -1, c),
        factors,
        x.reshape(n, c, -1),
        out.reshape(n, c, -1),
    )
    return out


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """``(1 + erf(x / sqrt(2))) / 2`` without the cancellation of ``1 + erf`` for negative
    ``x``: ``scipy.special.ndtr`` when installed, else ``erfc(-x / sqrt(2)) / 2`` by
    ``math.erfc`` element by element."""
    try:
        from scipy.special import ndtr
    except ImportError:
        half_erfc = np.frompyfunc(lambda v: 0.5 * math.erfc(-v / math.sqrt(2)), 1, 1)
        return half_erfc(x).astype(x.dtype)
    return ndtr(x).astype(x.dtype, copy=False)


def pass_inside(grad: np.ndarray, x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``grad`` where ``low < x < high``, else 0 (a NaN ``x`` gives 0): Hardtanh's and
    ReLU6's gradient as PyTorch computes it; one compiled pass when numba is installed.

    >>> pass_inside(np.ones(5), np.array([-1.0, 0.0, 0.5, 6.0, np.nan]), 0.0, 6.0).tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]
    """
    return _gate(grad, x, float(low), float(high), nan_passes=False)


def pass_positive(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad``, zeroed where ``x <= 0`` (a NaN ``x`` keeps its gradient): ReLU's gradient as
    PyTorch computes it.

    >>> pass_positive(np.ones(4), np.array([-1.0, 0.0, np.inf, np.nan])).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    return _gate(grad, x, 0.0, np.nan, nan_passes=True)  # x >= NaN is false: no upper bound


def _gate(grad: np.ndarray, x: np.ndarray, low: float, high: float, nan_passes: bool) -> np.ndarray:
    same = grad.shape == x.shape and grad.dtype == x.dtype
    if jit.kernels() is None or not same or grad.dtype not in (np.float32, np.float64):
        with np.errstate(invalid="ignore"):
            keep = ~((x <= low) | (x >= high)) if nan_passes else (x > low) & (x < high)
        return np.where(keep, grad, 0).astype(grad.dtype, copy=False)
    g, v = np.ascontiguousarray(grad), np.ascontiguousarray(x)
    out = np.empty_like(g)
    # the bounds rounded to x's dtype first, as PyTorch compares (and NumPy's path above):
    # Hardtanh(0.1, 0.7)'s gradient at x = float32(0.1) is 0, though float32(0.1) > 0.1
    low, high = (float(np.array(bound, dtype=x.dtype)) for bound in (low, high))
    jit.call("gate", g.reshape(-1), v.reshape(-1), low, high, nan_passes, out.reshape(-1))
    return out
