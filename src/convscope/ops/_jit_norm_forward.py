"""Compiled (numba) kernels of the normalisation forward; imported only when
:func:`convscope.ops.jit.kernels` says numba works.

Rows are the ``(a, c)`` rows of a C-contiguous ``(A, C, S)`` array flattened to
``(A * C, S)``, one parallel job per row (LayerNorm's rows are short: 96-768 values in
ConvNeXt, where NumPy's per-row reductions cost more than the arithmetic).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _moments_of(row: np.ndarray) -> tuple:  # pragma: no cover - compiled
    """Mean and sum of squared deviations of one row, both summed in float64 (its own
    fast-math flags when called: the sums vectorise whatever the caller's; a call costs about
    100 ns, so the row kernel inlines the same code, :data:`_moments_inline`)."""
    count = row.shape[0]
    s = 0.0
    for i in range(count):
        s += np.float64(row[i])
    mu = s / count
    q = 0.0
    for i in range(count):
        d = np.float64(row[i]) - mu
        q += d * d
    return mu, q


_moments_inline = njit(
    cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"}, inline="always"
)(_moments_of.py_func)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def row_moments(x: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:  # pragma: no cover
    """``mean[r]`` and ``m2[r] = sum((x[r] - mean[r]) ** 2)``, both summed in float64 (two
    passes over the row while it is cached: :func:`_moments_of`, inlined)."""
    for r in prange(x.shape[0]):
        mean[r], m2[r] = _moments_inline(x[r])


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def row_affine(
    x: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    col_scale: np.ndarray,
    col_shift: np.ndarray,
    out: np.ndarray,
    clamp: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out[r] = ((x[r] - centre[r]) * scale[r] + shift[r]) * col_scale + col_shift`` in
    ``x``'s dtype, rounded after every operation as NumPy's step-by-step passes round it; an
    empty ``centre`` / ``col_scale`` / ``col_shift`` skips that step.  A ``clamp`` ``(low,
    high)`` then clips each row to it while it is cached (a NaN stays NaN), an empty one
    does not."""
    rows, count = x.shape
    centred = centre.shape[0] > 0
    scaled = col_scale.shape[0] > 0
    shifted = col_shift.shape[0] > 0
    clamped = clamp.shape[0] > 0
    for r in prange(rows):
        a, b = scale[r], shift[r]
        if centred:
            c = centre[r]
            for i in range(count):
                out[r, i] = (x[r, i] - c) * a + b
        else:
            for i in range(count):
                out[r, i] = x[r, i] * a + b
        if scaled and shifted:
            for i in range(count):
                out[r, i] = out[r, i] * col_scale[i] + col_shift[i]
        elif scaled:
            for i in range(count):
                out[r, i] = out[r, i] * col_scale[i]
        elif shifted:
            for i in range(count):
                out[r, i] = out[r, i] + col_shift[i]
        if clamped:
            low, high = clamp[0], clamp[1]
            for i in range(count):
                v = out[r, i]
                out[r, i] = low if v < low else (high if v > high else v)


@njit(cache=True, nogil=True, error_model="numpy")
def _affine_of(
    row: np.ndarray, c: object, a: object, b: object, clamp: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out = (row - c) * a + b`` clipped to a non-empty ``clamp``, as :func:`row_affine`."""
    for i in range(row.shape[0]):
        out[i] = (row[i] - c) * a + b
    if clamp.shape[0] > 0:
        low, high = clamp[0], clamp[1]
        for i in range(row.shape[0]):
            v = out[i]
            out[i] = low if v < low else (high if v > high else v)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def channel_normalize(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    eps: float,
    clamp: np.ndarray,
    out: np.ndarray,
    stats: np.ndarray,
    centre: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """BatchNorm with batch statistics on ``x`` ``(A, C, S)``, one job per channel: each of
    its ``A`` rows' moments (:func:`_moments_of`), merged with Chan's formula, then the rows
    normalised while they are still in cache, the steps and roundings of
    :func:`convscope.autograd.normalization.normalize` (per-row constants in float64, cast to
    ``x``'s dtype for the affine pass, :func:`_affine_of`).  ``weight`` and ``bias`` (float64,
    ``(C,)``) are empty when absent, ``clamp`` too (else a fused ReLU's or ReLU6's bounds).
    Writes ``stats`` ``(4, C)`` float64: mean, biased variance, ``1/sqrt(var + eps)`` and the
    centre's rounding ``mean - centre``; and ``centre`` ``(C,)``, the mean in ``x``'s dtype."""
    rows, channels, count = x.shape
    scaled, shifted = weight.shape[0] > 0, bias.shape[0] > 0
    t = x.dtype.type
    row_means = np.empty((channels, rows))  # one allocation, not one per job
    for c in prange(channels):
        means = row_means[c]
        total = 0.0
        m2 = 0.0
        for a in range(rows):
            mu, q = _moments_of(x[a, c])
            means[a] = mu
            total += mu
            m2 += q
        mean = total / rows
        spread = 0.0
        for a in range(rows):
            d = means[a] - mean
            spread += d * d
        var = (m2 + count * spread) / (rows * count)
        rstd = 1.0 / np.sqrt(var + eps)
        rounded = t(mean)
        delta = mean - np.float64(rounded)
        scale = rstd * weight[c] if scaled else rstd
        shift = bias[c] - delta * scale if shifted else -delta * scale
        stats[0, c], stats[1, c], stats[2, c], stats[3, c] = mean, var, rstd, delta
        centre[c] = rounded
        a_, b_ = t(scale), t(shift)
        for a in range(rows):
            _affine_of(x[a, c], rounded, a_, b_, clamp, out[a, c])


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def channels_layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """LayerNorm over the channels of ``x`` ``(N, C, P)`` at every position, written in the
    same layout (a channels-last LayerNorm without the two transposes): per position the
    mean and biased variance in float64 (two passes over the channels, vectorised across 64
    positions), then, as the row path rounds it, ``((x - centre) * rstd + shift) * weight +
    bias`` in ``x``'s dtype with ``centre`` the mean rounded to it and ``shift = -(mean -
    centre) * rstd``.  ``weight``/``bias`` ``(C,)`` in ``x``'s dtype, empty when absent."""
    count, channels, positions = x.shape
    block = 64
    blocks = (positions + block - 1) // block
    scaled, shifted = weight.shape[0] > 0, bias.shape[0] > 0
    t = x.dtype.type
    for job in prange(count * blocks):
        n, p0 = job // blocks, (job % blocks) * block
        width = min(block, positions - p0)
        total = np.zeros(width)
        for c in range(channels):
            row = x[n, c, p0 : p0 + width]
            for j in range(width):
                total[j] += np.float64(row[j])
        mean = total / channels
        m2 = np.zeros(width)
        for c in range(channels):
            row = x[n, c, p0 : p0 + width]
            for j in range(width):
                d = np.float64(row[j]) - mean[j]
                m2[j] += d * d
        centre = np.empty(width, x.dtype)
        scale = np.empty(width, x.dtype)
        offset = np.empty(width, x.dtype)
        for j in range(width):
            rstd = 1.0 / np.sqrt(m2[j] / channels + eps)
            rounded = t(mean[j])
            centre[j] = rounded
            scale[j] = t(rstd)
            offset[j] = t(-(mean[j] - np.float64(rounded)) * rstd)
        for c in range(channels):
            row = x[n, c, p0 : p0 + width]
            target = out[n, c, p0 : p0 + width]
            for j in range(width):
                v = (row[j] - centre[j]) * scale[j] + offset[j]
                if scaled and shifted:
                    v = v * weight[c] + bias[c]
                elif scaled:
                    v = v * weight[c]
                elif shifted:
                    v = v + bias[c]
                target[j] = v
