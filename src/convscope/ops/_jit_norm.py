"""Compiled (numba) kernels of the normalisation backward; imported only when
:func:`convscope.ops.jit.kernels` says numba works.

Rows are the ``(a, c)`` rows of an ``(A, C, S)`` array flattened to ``(A * C, S)``; one
parallel job per row.  The sums are taken in float64 from the first product on (the deviation
``x - centre`` of two float32 values is exact in float64, and so is nearly every product), so
a BatchNorm's weight gradient is rounded once, not once per chunk; the combination adds in the
NumPy path's order, so both paths round alike.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _keeps(v: float, low: float, high: float, nan_passes: bool) -> bool:  # pragma: no cover
    """Whether an activation with output ``v`` passes its gradient: ``low < v < high``; a NaN
    passes with ``nan_passes`` (ReLU's rule in PyTorch, where Hardtanh's blocks it)."""
    if nan_passes:
        return not (v <= low or v >= high)
    return v > low and v < high


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sums_of(
    g: np.ndarray,
    x: np.ndarray,
    c: float,
    gate: np.ndarray,
    low: float,
    high: float,
    nan_passes: bool,
) -> tuple:  # pragma: no cover - compiled
    """``sum(h)`` and ``sum(h * (x - c))`` of one row in float64, ``h`` ``g`` gated as in
    :func:`_row_grad_sums` when ``gate`` is not empty (its own fast-math flags: the sums
    vectorise whatever the caller's)."""
    s = 0.0
    d = 0.0
    if gate.shape[0] > 0:
        for i in range(g.shape[0]):
            h = np.float64(g[i]) if _keeps(gate[i], low, high, nan_passes) else 0.0
            s += h
            d += h * (np.float64(x[i]) - c)
    else:
        for i in range(g.shape[0]):
            h = np.float64(g[i])
            s += h
            d += h * (np.float64(x[i]) - c)
    return s, d


def _row_grad_sums(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    total: np.ndarray,
    dot: np.ndarray,
    gate: np.ndarray,
    low: float,
    high: float,
    nan_passes: bool,
) -> None:  # pragma: no cover - compiled
    """``total[r] = sum(h[r])`` and ``dot[r] = sum(h[r] * (x[r] - centre[r]))``, every value
    converted to float64 before the subtraction, the product and the (vectorised) sums.
    ``h = g``, or with a non-empty ``gate`` (an activation's output, ``g``'s shape) ``g``
    where ``low < gate < high`` and 0 elsewhere (a NaN ``gate`` keeps ``g`` with
    ``nan_passes``): a ReLU's or ReLU6's backward fused into the BatchNorm's before it.

    Float32 partial sums of 256 values made a float32 BatchNorm's weight gradient 2-3.5x as
    far from the float64 one as PyTorch's (ResNet-18 layer1, 16x16 planes); float64 all the
    way is as fast or faster (one thread, (8, 64, 56, 56): 0.9 -> 0.4 ms)."""
    # _sums_of's loops written out: calling it per row, even inlined, cost 40% on 7x7 planes
    # (batch 8, 960 channels: 0.47 -> 0.66 ms)
    rows, count = g.shape
    gated = gate.shape[0] > 0
    for r in prange(rows):  # range when compiled serially
        c = np.float64(centre[r])
        s = 0.0
        d = 0.0
        if gated:
            for i in range(count):
                h = np.float64(g[r, i]) if _keeps(gate[r, i], low, high, nan_passes) else 0.0
                s += h
                d += h * (np.float64(x[r, i]) - c)
        else:
            for i in range(count):
                h = np.float64(g[r, i])
                s += h
                d += h * (np.float64(x[r, i]) - c)
        total[r] = s
        dot[r] = d


# parallel, and serial for one thread or small arrays (``jit.run``'s serial twin would drop
# the reassociation that lets the sums vectorise)
row_grad_sums = njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})(_row_grad_sums)
row_grad_sums_serial = njit(cache=True, nogil=True, fastmath={"reassoc"})(_row_grad_sums)


@njit(parallel=True, cache=True, nogil=True)
def row_combine(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    out: np.ndarray,
    gate: np.ndarray,
    low: float,
    high: float,
    nan_passes: bool,
) -> None:  # pragma: no cover - compiled
    """``out[r] = (x[r] - centre[r]) * b[r] + h[r] * a[r] + c[r]``, added left to right, ``h``
    ``g`` gated as in :func:`_row_grad_sums`."""
    rows, count = g.shape
    gated = gate.shape[0] > 0
    zero = np.zeros(1, g.dtype)[0]  # in g's dtype: a literal 0 would widen h to float64
    for r in prange(rows):
        ce, ar, br, cr = centre[r], a[r], b[r], c[r]
        if gated:
            for i in range(count):
                h = g[r, i] if _keeps(gate[r, i], low, high, nan_passes) else zero
                out[r, i] = ((x[r, i] - ce) * br + h * ar) + cr
        else:
            for i in range(count):
                out[r, i] = ((x[r, i] - ce) * br + g[r, i] * ar) + cr


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def channel_backward(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    stats: np.ndarray,
    weight: np.ndarray,
    gate: np.ndarray,
    low: float,
    high: float,
    nan_passes: bool,
    sums: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The backward of :func:`convscope.ops._jit_norm_forward.channel_normalize` on ``(A, C,
    S)`` arrays, one job per channel: its rows' two sums (:func:`_sums_of`, the gate of a
    fused activation applied; ``gate`` ``(A, C, 0)`` for none), merged over the batch, then,
    when ``out`` is not empty, the input gradient of its rows while they are in cache
    (as :func:`row_combine`), the steps and roundings of the row-by-row path.  ``stats`` as the
    forward wrote it, ``weight`` (float64) empty when absent; writes ``sums`` ``(2, C)``: the
    sum of ``h`` (the bias gradient) and of ``h * (x - mean)`` (the weight gradient over
    ``rstd``)."""
    rows, channels, count = x.shape
    scaled, wanted = weight.shape[0] > 0, out.shape[0] > 0
    t = x.dtype.type
    row_sums = np.empty((channels, 2, rows))  # one allocation, not one per job
    for c in prange(channels):
        ce = centre[c]
        delta, rstd = stats[3, c], stats[2, c]
        totals, dots = row_sums[c, 0], row_sums[c, 1]
        total = 0.0
        dot = 0.0
        for a in range(rows):
            s, d = _sums_of(g[a, c], x[a, c], np.float64(ce), gate[a, c], low, high, nan_passes)
            d -= delta * s
            totals[a], dots[a] = s, d
            total += s
            dot += d
        sums[0, c], sums[1, c] = total, dot
        if not wanted:
            continue
        if scaled:
            total, dot = 0.0, 0.0
            for a in range(rows):
                total += totals[a] * weight[c]
                dot += dots[a] * weight[c]
        mean_h = total / (rows * count)
        k = rstd * rstd * dot / (rows * count)
        ar = rstd * weight[c] if scaled else rstd
        br = -rstd * k
        cr = rstd * (k * delta - mean_h)
        a_, b_, c_ = t(ar), t(br), t(cr)
        zero = t(0)
        # row_combine's loops, written out (a call per row costs about 100 ns)
        for a in range(rows):
            gr, xr, orow, gate_row = g[a, c], x[a, c], out[a, c], gate[a, c]
            if gate_row.shape[0] > 0:
                for i in range(count):
                    h = gr[i] if _keeps(gate_row[i], low, high, nan_passes) else zero
                    orow[i] = ((xr[i] - ce) * b_ + h * a_) + c_
            else:
                for i in range(count):
                    orow[i] = ((xr[i] - ce) * b_ + gr[i] * a_) + c_
