"""Compiled (numba) kernels of the normalisation forward; imported only when
:func:`convscope.ops.jit.kernels` says numba works.

Rows are the ``(a, c)`` rows of a C-contiguous ``(A, C, S)`` array flattened to
``(A * C, S)``, one parallel job per row (LayerNorm's rows are short: 96-768 values in
ConvNeXt, where NumPy's per-row reductions cost more than the arithmetic).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def row_moments(x: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:  # pragma: no cover
    """``mean[r]`` and ``m2[r] = sum((x[r] - mean[r]) ** 2)``, both summed in float64 (two
    passes over the row while it is cached)."""
    rows, count = x.shape
    for r in prange(rows):
        s = 0.0
        for i in range(count):
            s += np.float64(x[r, i])
        mu = s / count
        q = 0.0
        for i in range(count):
            d = np.float64(x[r, i]) - mu
            q += d * d
        mean[r] = mu
        m2[r] = q


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
