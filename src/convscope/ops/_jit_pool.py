"""Compiled (numba) sliding-window kernels: max and average pooling, depthwise convolution.

Imported only through :func:`convscope.ops.pool.compiled_kernels`.  Every kernel works on
3-D windows (1-D and 2-D calls add singleton dimensions) and runs one job per
(sample, channel) plane and band of output rows (axis 1), shared out with ``prange``.  A job
gathers the rows its band reads into a small per-thread buffer, split into stride phases so
that every kernel tap reads one contiguous run ("wide rows": output position ``p`` of a tap
at flat offset ``t`` reads buffer cell ``t + p``; positions between the end of one output
row and the start of the next are computed and dropped).  The buffer holds the padding
value (zero, or the lowest value for a maximum) outside the input, so the taps need no
bounds checks; it stays in cache, and the only full-size arrays read and written are the
input and the output.

The tables (built by :class:`convscope.ops.pool.Windows`):

* ``geom`` (int64, 15): input sizes ``D, H, W``, output sizes, strides, dilations, padding
  before each dimension;
* ``phases`` (nph, 3): the stride phases the taps use; ``tap_phase`` (T,) and ``tap_q``
  (T, 3): each tap's phase and its offset (in phase cells) per dimension, row-major taps;
* ``reach`` (3,): largest ``tap_q`` per dimension; ``band``: output rows (axis 1) per job;
  ``chunks``: how many parts the jobs are split into (a few per thread; each part allocates
  its buffers once).

``cache=True`` stores the machine code beside this file, so only the first process on a
machine compiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _ceil_div(a, b):  # pragma: no cover - compiled
    return -((-a) // b)


@njit(cache=True, nogil=True, inline="always")
def _u(i):  # pragma: no cover - compiled
    """An index known to be non-negative: no wrap-around branch, so loops vectorise."""
    return np.uint64(i)


@njit(cache=True, nogil=True)
def _gather(xf, base, h0, geom, phases, plane, fill, buf, filled):  # pragma: no cover
    """Phase planes: ``buf`` cell ``((i*Pd + a)*Ph + b)*Pw + q`` = padded input cell
    ``(a*sd + rd, (h0 + b)*sh + rh, q*sw + rw)`` of the plane at flat offset ``base`` of
    ``xf``, for phase ``(rd, rh, rw) = phases[i]``; ``fill`` where that cell is padding or past
    the input.  With ``filled`` the buffer already holds this band's ``fill`` cells (the
    previous job of the chunk had the same first row ``h0``): only input cells are copied."""
    d_in, h_in, w_in = geom[0], geom[1], geom[2]
    sd, sh, sw = geom[6], geom[7], geom[8]
    pd, ph, pw = geom[12], geom[13], geom[14]
    pl_d, pl_h, pl_w = plane[0], plane[1], plane[2]
    if not filled:
        for i in range(buf.shape[0]):
            buf[i] = fill
    for i in range(phases.shape[0]):
        rd, rh, rw = phases[i, 0], phases[i, 1], phases[i, 2]
        qlo = min(pl_w, max(0, _ceil_div(pw - rw, sw)))
        qhi = max(qlo, min(pl_w, _ceil_div(w_in + pw - rw, sw)))
        first = qlo * sw + rw - pw
        inside = qhi - qlo
        for a in range(pl_d):
            di = a * sd + rd - pd
            if di < 0 or di >= d_in:
                continue
            for b in range(pl_h):
                hi = (h0 + b) * sh + rh - ph
                if hi < 0 or hi >= h_in:
                    continue
                row = ((i * pl_d + a) * pl_h + b) * pl_w + qlo
                src = base + (di * h_in + hi) * w_in + first
                if sw == 1:
                    for q in range(inside):
                        buf[_u(row + q)] = xf[_u(src + q)]
                else:
                    for q in range(inside):
                        buf[_u(row + q)] = xf[_u(src + q * sw)]


@njit(cache=True, nogil=True)
def _plane(geom, reach, band):  # pragma: no cover - compiled
    """Shape of one phase plane of a job (every band has the full band's shape; the rows of a
    last, shorter band past the output are gathered but never computed)."""
    plane = np.empty(3, np.int64)
    plane[0] = geom[3] + reach[0]
    plane[1] = min(band, geom[4]) + reach[1]
    plane[2] = geom[5] + reach[2]
    return plane


@njit(cache=True, nogil=True)
def _tap_starts(tap_phase, tap_q, plane):  # pragma: no cover - compiled
    """Flat offset in the buffer of every tap's first cell (its phase plane plus its offset)."""
    cells = plane[0] * plane[1] * plane[2]
    taps = tap_q.shape[0]
    starts = np.empty(taps, np.int64)
    for t in range(taps):
        starts[t] = (
            tap_phase[t] * cells + (tap_q[t, 0] * plane[1] + tap_q[t, 1]) * plane[2] + tap_q[t, 2]
        )
    return starts


@njit(cache=True, nogil=True)
def _chunks(jobs, chunks):  # pragma: no cover - compiled
    """Jobs per chunk and the number of chunks (buffers are allocated once per chunk)."""
    count = max(1, min(jobs, chunks))
    return _ceil_div(jobs, count), count


@njit(cache=True, nogil=True, inline="always")
def _job(job, ch, bands, geom, plane, band):  # pragma: no cover - compiled
    """Sample, channel, first output row, rows and wide-row length of one job."""
    n = job // (ch * bands)
    c = (job // bands) % ch
    h0 = (job % bands) * band
    rows = min(band, geom[4] - h0)
    wide = (geom[3] - 1) * plane[1] * plane[2] + (rows - 1) * plane[2] + geom[5]
    return n, c, h0, rows, wide


@njit(cache=True, nogil=True, inline="always")
def _store(acc, of, obase, geom, plane, h0, rows):  # pragma: no cover - compiled
    """The valid positions of the wide rows ``acc`` into the output plane at ``obase``."""
    od, oh, ow = geom[3], geom[4], geom[5]
    for a in range(od):
        for b in range(rows):
            begin = (a * plane[1] + b) * plane[2]
            line = obase + (a * oh + h0 + b) * ow
            for q in range(ow):
                of[_u(line + q)] = acc[_u(begin + q)]


@njit(parallel=True, cache=True, nogil=True)
def depthwise(x, w, geom, phases, tap_phase, tap_q, reach, band, chunks, out):  # pragma: no cover
    """``out[n, c*M + m] = sum_t w[c, m, t] * window_t(x[n, c])`` with zero padding, the taps
    added one after another in row-major order (four per pass over the accumulator).

    ``x`` (N, C, D, H, W), ``w`` (C, M, T), ``out`` (N, C*M, OD, OH, OW), all contiguous.
    """
    nb, ch = x.shape[0], x.shape[1]
    mult, taps = w.shape[1], w.shape[2]
    xf, of = x.reshape(x.size), out.reshape(out.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    out_plane = geom[3] * geom[4] * geom[5]
    bands = _ceil_div(geom[4], band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane)
    zero = x.dtype.type(0)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            _gather(xf, (n * ch + c) * in_plane, h0, geom, phases, plane, zero, buf, h0 == last)
            last = h0
            for m in range(mult):
                t = 0
                if taps == 9:  # 3x3: one pass, the same additions in the same order
                    ws = w[c, m]
                    o = starts
                    for p in range(wide):
                        acc[p] = (
                            (
                                (
                                    (
                                        (
                                            (
                                                (
                                                    ws[0] * buf[_u(o[0] + p)]
                                                    + ws[1] * buf[_u(o[1] + p)]
                                                )
                                                + ws[2] * buf[_u(o[2] + p)]
                                            )
                                            + ws[3] * buf[_u(o[3] + p)]
                                        )
                                        + ws[4] * buf[_u(o[4] + p)]
                                    )
                                    + ws[5] * buf[_u(o[5] + p)]
                                )
                                + ws[6] * buf[_u(o[6] + p)]
                            )
                            + ws[7] * buf[_u(o[7] + p)]
                        ) + ws[8] * buf[_u(o[8] + p)]
                    t = 9
                while t + 4 <= taps:
                    w0, w1, w2, w3 = w[c, m, t], w[c, m, t + 1], w[c, m, t + 2], w[c, m, t + 3]
                    o0, o1, o2, o3 = starts[t], starts[t + 1], starts[t + 2], starts[t + 3]
                    if t == 0:
                        for p in range(wide):
                            acc[p] = (
                                (w0 * buf[_u(o0 + p)] + w1 * buf[_u(o1 + p)]) + w2 * buf[_u(o2 + p)]
                            ) + w3 * buf[_u(o3 + p)]
                    else:
                        for p in range(wide):
                            acc[p] = (
                                ((acc[p] + w0 * buf[_u(o0 + p)]) + w1 * buf[_u(o1 + p)])
                                + w2 * buf[_u(o2 + p)]
                            ) + w3 * buf[_u(o3 + p)]
                    t += 4
                if t == 0:
                    for p in range(wide):
                        acc[p] = zero
                while t < taps:
                    wt, o0 = w[c, m, t], starts[t]
                    for p in range(wide):
                        acc[p] += wt * buf[_u(o0 + p)]
                    t += 1
                obase = (n * ch * mult + c * mult + m) * out_plane
                _store(acc, of, obase, geom, plane, h0, rows)


@njit(parallel=True, cache=True, nogil=True)
def max_values(
    x, geom, phases, tap_phase, tap_q, reach, band, chunks, lowest, out
):  # pragma: no cover - compiled
    """Maximum of each window, padding never winning; a NaN in the window gives NaN.

    ``x`` (N, C, D, H, W), ``out`` (N, C, OD, OH, OW), contiguous; ``lowest`` pads.
    """
    nb, ch = x.shape[0], x.shape[1]
    taps = tap_q.shape[0]
    xf, of = x.reshape(x.size), out.reshape(out.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    out_plane = geom[3] * geom[4] * geom[5]
    bands = _ceil_div(geom[4], band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane)
    fill = x.dtype.type(lowest)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            plane_index = n * ch + c
            _gather(xf, plane_index * in_plane, h0, geom, phases, plane, fill, buf, h0 == last)
            last = h0
            o0 = starts[0]
            for p in range(wide):
                acc[p] = buf[_u(o0 + p)]
            for t in range(1, taps):
                o0 = starts[t]
                for p in range(wide):
                    v = buf[_u(o0 + p)]
                    a = acc[p]
                    acc[p] = v if (v > a or v != v) else a
            _store(acc, of, plane_index * out_plane, geom, plane, h0, rows)


@njit(parallel=True, cache=True, nogil=True)
def max_indices(
    x, geom, phases, tap_phase, tap_q, tap_cell, reach, band, chunks, lowest, out, index
):  # pragma: no cover - compiled
    """:func:`max_values` and the flat spatial index of each maximum, as PyTorch picks it:
    the first cell in window order that is larger than everything before it (from the lowest
    value), or the last NaN; a window without such a cell points at its first input cell.

    ``tap_cell`` (T,): flat input offset of each tap; ``index`` like ``out``, int64.
    """
    nb, ch = x.shape[0], x.shape[1]
    taps = tap_q.shape[0]
    xf = x.reshape(x.size)
    h_in, w_in = geom[1], geom[2]
    od, oh, ow = geom[3], geom[4], geom[5]
    sd, sh, sw = geom[6], geom[7], geom[8]
    dd, dh, dw = geom[9], geom[10], geom[11]
    pd, ph, pw = geom[12], geom[13], geom[14]
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    bands = _ceil_div(oh, band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane)
    fill = x.dtype.type(lowest)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        best = np.empty(cells, np.int64)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            _gather(xf, (n * ch + c) * in_plane, h0, geom, phases, plane, fill, buf, h0 == last)
            last = h0
            for p in range(wide):
                acc[p] = fill
                best[p] = -1
            for t in range(taps):
                o0 = starts[t]
                for p in range(wide):
                    v = buf[_u(o0 + p)]
                    if v > acc[p] or v != v:
                        acc[p] = v
                        best[p] = t
            values, where = out[n, c], index[n, c]
            for a in range(od):
                d0 = a * sd - pd
                first_d = d0 + _ceil_div(-d0, dd) * dd if d0 < 0 else d0
                for b in range(rows):
                    r = h0 + b
                    hh = r * sh - ph
                    first_h = hh + _ceil_div(-hh, dh) * dh if hh < 0 else hh
                    begin = (a * plane[1] + b) * plane[2]
                    base = (d0 * h_in + hh) * w_in
                    for q in range(ow):
                        values[a, r, q] = acc[begin + q]
                        t = best[begin + q]
                        col = q * sw - pw
                        if t >= 0:
                            where[a, r, q] = base + col + tap_cell[t]
                        else:
                            first_w = col + _ceil_div(-col, dw) * dw if col < 0 else col
                            where[a, r, q] = (first_d * h_in + first_h) * w_in + first_w


@njit(parallel=True, cache=True, nogil=True)
def avg_values(
    x, geom, phases, tap_phase, tap_q, reach, band, chunks, div_d, div_h, div_w, out
):  # pragma: no cover - compiled
    """Sum of each window (taps in row-major order, padding adds zeros) divided by
    ``div_d[a] * div_h[b] * div_w[q]`` (in the input's dtype, exact for window sizes)."""
    nb, ch = x.shape[0], x.shape[1]
    taps = tap_q.shape[0]
    xf = x.reshape(x.size)
    od, oh, ow = geom[3], geom[4], geom[5]
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    bands = _ceil_div(oh, band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane)
    zero = x.dtype.type(0)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            _gather(xf, (n * ch + c) * in_plane, h0, geom, phases, plane, zero, buf, h0 == last)
            last = h0
            for p in range(wide):
                acc[p] = zero
            for t in range(taps):
                o0 = starts[t]
                for p in range(wide):
                    acc[p] += buf[_u(o0 + p)]
            target = out[n, c]
            for a in range(od):
                for b in range(rows):
                    r = h0 + b
                    begin = (a * plane[1] + b) * plane[2]
                    outer = div_d[a] * div_h[r]
                    for q in range(ow):
                        target[a, r, q] = acc[begin + q] / (outer * div_w[q])


@njit(parallel=True, cache=True, nogil=True)
def max_scatter(grad, index, out):  # pragma: no cover - compiled
    """``out[r] = 0; out[r, index[r, p]] += grad[r, p]`` in order of ``p``, one row (sample,
    channel) per job; indices past the row are skipped.  ``grad``/``index`` (R, P), ``out``
    (R, cells)."""
    rows, cells = out.shape
    for r in prange(rows):
        for i in range(cells):
            out[r, i] = 0
        for p in range(grad.shape[1]):
            i = index[r, p]
            if 0 <= i < cells:
                out[r, i] += grad[r, p]
