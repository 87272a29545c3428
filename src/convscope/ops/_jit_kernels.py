"""Compiled (numba) kernels; imported only through :mod:`convscope.ops.jit`.

``cache=True`` stores the machine code beside this file (or in ``NUMBA_CACHE_DIR``), so only
the first process on a machine pays for compiling.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic


@njit(parallel=True, cache=True, nogil=True)
def grouped_taps(
    planes: np.ndarray,
    tap_phase: np.ndarray,
    tap_offset: np.ndarray,
    weights: np.ndarray,
    acc: np.ndarray,
    wide: int,
) -> None:  # pragma: no cover - compiled
    """Tap-by-tap multiply-accumulate over flat "wide rows", one (sample, output channel)
    per job.

    ``planes`` (phases, nb, groups * cg, plane), ``weights`` (groups, og, cg, taps), ``acc``
    (nb, groups * og, >= wide): ``acc[n, g*og + m, p] = sum_c sum_t weights[g, m, c, t] *
    planes[tap_phase[t], n, g*cg + c, tap_offset[t] + p]`` for ``p < wide``, in that order.
    A depthwise layer is the case ``cg = 1``.
    """
    nb = acc.shape[0]
    groups, og, cg, taps = weights.shape
    for job in prange(nb * groups * og):
        n = job // (groups * og)
        g = (job // og) % groups
        m = job % og
        out = acc[n, g * og + m, :wide]
        out[:] = 0
        for ci in range(cg):
            plane = g * cg + ci
            t = 0
            # four taps per pass over the accumulator, added in tap order as one at a time
            # would (the same rounding), with a quarter of the loads and stores of ``out``
            while t + 4 <= taps:
                w0, w1 = weights[g, m, ci, t], weights[g, m, ci, t + 1]
                w2, w3 = weights[g, m, ci, t + 2], weights[g, m, ci, t + 3]
                # slices starting at the offsets: indices from range() are provably
                # non-negative, so the loop has no wrap-around branch and vectorises
                o0, o1, o2, o3 = (
                    tap_offset[t],
                    tap_offset[t + 1],
                    tap_offset[t + 2],
                    tap_offset[t + 3],
                )
                s0 = planes[tap_phase[t], n, plane, o0 : o0 + wide]
                s1 = planes[tap_phase[t + 1], n, plane, o1 : o1 + wide]
                s2 = planes[tap_phase[t + 2], n, plane, o2 : o2 + wide]
                s3 = planes[tap_phase[t + 3], n, plane, o3 : o3 + wide]
                for p in range(wide):
                    out[p] = (((out[p] + w0 * s0[p]) + w1 * s1[p]) + w2 * s2[p]) + w3 * s3[p]
                t += 4
            while t < taps:
                w = weights[g, m, ci, t]
                start = tap_offset[t]
                src = planes[tap_phase[t], n, plane, start : start + wide]
                for p in range(wide):
                    out[p] += w * src[p]
                t += 1


@njit(parallel=True, cache=True, nogil=True)
def flip_swap_taps(w: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[g, o, c, t] = w[g, c, o, T - 1 - t]`` for C-contiguous ``w`` ``(G, C, O, T)``
    and ``out`` ``(G, O, C, T)``: a grouped kernel's in/out roles swapped and its taps
    reversed, in tiles of 16 x 16 ``(o, c)`` pairs (row by row, a big kernel's strides would
    touch a new page with every read), one job per 16 output rows of a group."""
    groups, cin, og, taps = w.shape
    flat_w, flat_out = w.reshape(w.size), out.reshape(out.size)
    blocks = (og + 15) // 16
    for job in prange(groups * blocks):
        g, o0 = job // blocks, (job % blocks) * 16
        o1 = min(og, o0 + 16)
        for c0 in range(0, cin, 16):
            for c in range(c0, min(cin, c0 + 16)):
                for o in range(o0, o1):
                    read = ((g * cin + c) * og + o) * taps + taps - 1
                    write = ((g * og + o) * cin + c) * taps
                    for t in range(taps):
                        flat_out[np.uint64(write + t)] = flat_w[np.uint64(read - t)]


@njit(parallel=True, cache=True, nogil=True)
def sgd_momentum(
    param: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray,
    lr: float,
    momentum: float,
    damped: float,
    decay: float,
    nesterov: bool,
) -> None:  # pragma: no cover - compiled
    """One SGD step with a momentum buffer on flat arrays of one dtype, in place on ``param``
    and ``buf``, in one pass: ``g = grad + decay * param``, ``buf = momentum * buf + damped *
    g``, ``param += -lr * d`` with ``d = g + momentum * buf`` (``nesterov``) or ``buf``.  The
    constants are in the arrays' dtype and every operation rounds as NumPy's step-by-step
    passes do (``damped == 1``, ``decay == 0``: that term is skipped, as there)."""
    t = param.dtype.type
    step, m, d, wd = t(-lr), t(momentum), t(damped), t(decay)
    decayed, scaled = decay != 0, damped != 1
    block = 1 << 14
    size = param.shape[0]
    plain = not (decayed or scaled or nesterov)
    for b in prange((size + block - 1) // block):
        # slices of the block: indices from 0, so no wrap-around checks keep the loops scalar
        first, end = b * block, min(size, (b + 1) * block)
        p, gr, bu = param[first:end], grad[first:end], buf[first:end]
        if plain:  # the usual case, in a loop without branches
            for i in range(end - first):
                v = bu[i] * m + gr[i]
                bu[i] = v
                p[i] = p[i] + step * v
            continue
        for i in range(end - first):
            g = gr[i]
            if decayed:
                g = g + wd * p[i]
            v = bu[i] * m
            v = v + (d * g if scaled else g)
            bu[i] = v
            p[i] = p[i] + step * (g + m * v if nesterov else v)


@njit(cache=True, nogil=True, error_model="numpy")
def batch_norm_fold(
    var: np.ndarray,
    mean: np.ndarray,
    eps: float,
    weight: np.ndarray,
    bias: np.ndarray,
    conv_bias: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """An eval-mode BatchNorm's per-channel ``scale = weight / sqrt(var + eps)`` and ``shift =
    -mean * scale + conv_bias * scale + bias`` in float64, stored in ``scale``'s and
    ``shift``'s dtype; an empty ``weight``, ``bias`` or ``conv_bias`` is absent.  The steps of
    :func:`convscope.ops.epilogue.batch_norm_affine`'s NumPy path, rounded alike."""
    weighted, biased, shifted = weight.shape[0] > 0, bias.shape[0] > 0, conv_bias.shape[0] > 0
    for c in range(var.shape[0]):
        s = 1.0 / np.sqrt(np.float64(var[c]) + eps)
        if weighted:
            s = s * np.float64(weight[c])
        t = -np.float64(mean[c]) * s
        if shifted:
            t += np.float64(conv_bias[c]) * s
        if biased:
            t += np.float64(bias[c])
        scale[c] = s
        shift[c] = t


@njit(parallel=True, cache=True, nogil=True)
def gather_planes(slab: np.ndarray, index: np.ndarray, planes: np.ndarray) -> None:
    """``planes[ph, n, c, q] = slab[n, c, index[ph, q]]``: the stride phases of every
    (sample, channel) plane, one job per plane.

    ``slab`` (nb, cb, cells), ``index`` (phases, plane) unsigned, ``planes``
    (phases, nb, cb, plane).
    """  # pragma: no cover - compiled
    nphase, nb, cb, size = planes.shape
    for job in prange(nb * cb):
        n = job // cb
        c = job % cb
        cells = slab[n, c]
        for ph in range(nphase):
            dest = planes[ph, n, c]
            source = index[ph]
            for q in range(size):
                dest[q] = cells[source[q]]


@njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def grouped_taps_weight(
    planes: np.ndarray,
    tap_phase: np.ndarray,
    tap_offset: np.ndarray,
    grad: np.ndarray,
    wide: int,
    total: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Weight gradient of :func:`grouped_taps`, added into ``total`` (groups, og, cg, taps):
    ``total[g, m, c, t] += sum_n sum_p grad[n, g*og + m, p] *
    planes[tap_phase[t], n, g*cg + c, tap_offset[t] + p]`` for ``p < wide``.

    ``grad`` holds the output gradient in the same wide-row layout, zero at the positions
    past each output row.  The sums may be reassociated (vectorised), as any BLAS would.
    """
    groups, og, cg, taps = total.shape
    nb = grad.shape[0]
    for job in prange(groups * og):
        g = job // og
        m = job % og
        for ci in range(cg):
            for t in range(taps):
                start = tap_offset[t]
                s = total[g, m, ci, t]
                for n in range(nb):
                    a = grad[n, g * og + m, :wide]
                    b = planes[tap_phase[t], n, g * cg + ci, start : start + wide]
                    for p in range(wide):
                        s += a[p] * b[p]
                total[g, m, ci, t] = s


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def epilogue(
    planes: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    residual: np.ndarray,
    has_residual: bool,
    activation: int,
) -> None:  # pragma: no cover - compiled
    """``planes[r] = act(planes[r] * scale[r % C] + shift[r % C] (+ residual[r]))`` in place,
    one (sample, channel) plane per job: an affine pass, then the activation on the same,
    still cached, row (codes: see ``ops.epilogue.ACTIVATIONS``)."""
    rows, size = planes.shape
    channels = scale.shape[0]
    for r in prange(rows):
        row = planes[r]
        s = scale[r % channels]
        b = shift[r % channels]
        if has_residual:
            extra = residual[r]
            for i in range(size):
                row[i] = row[i] * s + b + extra[i]
        else:
            for i in range(size):
                row[i] = row[i] * s + b
        if activation == 1:
            for i in range(size):
                if row[i] < 0:
                    row[i] = 0
        elif activation == 2:
            for i in range(size):
                row[i] = min(max(row[i], 0), 6)
        elif activation == 3:
            for i in range(size):
                v = row[i]
                row[i] = v * min(max(v + 3, 0), 6) / 6
        elif activation == 4:
            for i in range(size):
                v = row[i]
                row[i] = v / (1 + np.exp(-v))
        elif activation == 5:
            for i in range(size):
                row[i] = min(max(row[i] + 3, 0), 6) / 6
        elif activation == 6:
            for i in range(size):
                row[i] = 1 / (1 + np.exp(-row[i]))
        elif activation == 7:
            for i in range(size):
                v = row[i]
                row[i] = 0.5 * v * math.erfc(-v * 0.7071067811865476)
        elif activation == 8:
            for i in range(size):
                row[i] = np.tanh(row[i])


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def epilogue_logistic_f32(
    planes: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    residual: np.ndarray,
    has_residual: bool,
    silu: bool,
) -> None:  # pragma: no cover - compiled
    """:func:`epilogue` for float32 with SiLU (``silu``) or the sigmoid: the affine step (and
    residual) into a small staged block, then :func:`logistic_f32` from it back into
    ``planes``, so that each value is read from memory and written back once (two separate
    passes cost a second round trip through memory).  Blocks run across rows: a block of
    many short rows (7x7 maps) is one logistic pass, not one per row.  The same arithmetic,
    in the same order, as the two passes."""
    rows, size = planes.shape
    channels = scale.shape[0]
    total = rows * size
    flat = planes.reshape(total)
    extra = residual.reshape(residual.shape[0] * residual.shape[1])
    block = 4096
    jobs = max(1, min(256, total // (4 * block)))  # each job's scratch serves 4+ blocks
    for job in prange(jobs):
        staged = np.empty(block, np.float32)
        first, last = job * total // jobs, (job + 1) * total // jobs
        for start in range(first, last, block):
            stop = min(last, start + block)
            i = start
            while i < stop:
                r = i // size
                end = min(stop, (r + 1) * size)
                s = scale[r % channels]
                b = shift[r % channels]
                target, source = staged[i - start : end - start], flat[i:end]
                if has_residual:
                    added = extra[i:end]
                    for j in range(end - i):
                        target[j] = source[j] * s + b + added[j]
                else:
                    for j in range(end - i):
                        target[j] = source[j] * s + b
                i = end
            # from a separate block: LLVM vectorises the loop only when the source and the
            # target provably do not overlap (in place, its run-time check falls back to
            # scalar code: 2.5x slower)
            logistic_f32(staged[: stop - start], flat[start:stop], silu)


@njit(parallel=True, cache=True, nogil=True)
def scale_add_from_channels_last(
    y: np.ndarray, scale: np.ndarray, x: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out[n, c, p] = scale[c] * y[n, p, c] + x[n, c, p]`` (the product rounded, then the
    sum: no fused multiply-add), ``y`` (N, P, C) channels-last, ``x`` and ``out`` (N, C, P);
    in tiles of 64 positions by 16 channels, so that the transposed reads of ``y`` stay in
    cache.  One job per (sample, tile of positions)."""
    nb, positions, channels = y.shape
    tile = 64
    tiles = (positions + tile - 1) // tile
    for job in prange(nb * tiles):
        n, p0 = job // tiles, (job % tiles) * tile
        p1 = min(positions, p0 + tile)
        for c0 in range(0, channels, 16):
            for c in range(c0, min(channels, c0 + 16)):
                s = scale[c]
                # slices: indices from 0, no wrap-around checks in the loop
                branch, source, target = y[n, p0:p1, c], x[n, c, p0:p1], out[n, c, p0:p1]
                for p in range(p1 - p0):
                    target[p] = s * branch[p] + source[p]


@njit(parallel=True, cache=True, nogil=True)
def gelu(source: np.ndarray, target: np.ndarray) -> None:  # pragma: no cover - compiled
    """``target[i] = x * (1 + erf(x / sqrt(2))) / 2`` for ``x = source[i]`` (flat arrays), as
    ``x * erfc(-x / sqrt(2)) / 2`` in double precision (libm's ``erfc``: no cancellation
    where ``1 + erf`` is tiny), in blocks spread over the threads."""
    size = source.shape[0]
    block = 1 << 14
    for b in prange((size + block - 1) // block):
        for i in range(b * block, min(size, (b + 1) * block)):
            x = np.float64(source[i])
            target[i] = 0.5 * x * math.erfc(-x * 0.7071067811865476)


@intrinsic
def _as_float32(typingctx: object, bits: object) -> tuple:  # pragma: no cover - compiled
    """The float32 whose bit pattern is the int32 ``bits`` (LLVM's ``bitcast``: no memory
    round trip, so the loops that use it still vectorise)."""

    def codegen(context: object, builder: object, signature: object, args: list) -> object:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _exp_parts(high: np.float32, low: np.float32) -> tuple:  # pragma: no cover - compiled
    """``e^(high + low) = 2^k * m`` for float32 ``high + low >= -150``: ``k`` (a float32
    integer) and ``m``.  Cody-Waite: ``r = high - k ln 2 + low``, ``high - k ln2_hi`` exact
    (where ``high`` is exact, its large part is not rounded), ``|r| <= ln 2 / 2``; ``e^r`` by
    its Taylor polynomial to ``r^7`` (relative error below 1e-7 before rounding).  Inlined:
    the loops that call it still vectorise."""
    k = ((high + low) * np.float32(1.442695) + np.float32(12582912.0)) - np.float32(12582912.0)
    r = ((high - k * np.float32(0.693145751953125)) + low) - k * np.float32(1.428606765330187e-06)
    e = np.float32(1.0 / 5040.0)
    e = np.float32(1.0 / 720.0) + r * e
    e = np.float32(1.0 / 120.0) + r * e
    e = np.float32(1.0 / 24.0) + r * e
    e = np.float32(1.0 / 6.0) + r * e
    e = np.float32(0.5) + r * e
    e = np.float32(1.0) + r * e
    return k, np.float32(1.0) + r * e


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _times_pow2(m: np.float32, k: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``m * 2^k`` for a float32 integer ``-191 < k < 64``: ``2^(k + 64)`` from its exponent
    bits, then ``2^-64``, so that subnormal results round as one multiplication does."""
    scale = _as_float32((np.int32(k) + np.int32(127 + 64)) << 23)
    return (m * scale) * np.float32(5.421010862427522e-20)  # 2^-64


# erf(x / sqrt 2) ~ x P(x^2) / Q(x^2) on [0, 5.75]: P's and Q's coefficients (lowest power
# first, Q's constant 1) fitted in float64 by iteratively reweighted linear least squares
# towards the minimax rational of degree (5, 5) in x^2; largest error 3.1e-8 before rounding
_ERF_P = (0.7978844, 0.07045081, 0.009514883, 0.00036417521, 1.2749338e-05, 4.2518646e-08)
_ERF_Q = (1.0, 0.25496244, 0.029421154, 0.0019601465, 7.752777e-05, 1.1555148e-06)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def gelu_f32(source: np.ndarray, target: np.ndarray) -> None:  # pragma: no cover - compiled
    """``target = x * (1 + erf(x / sqrt 2)) / 2`` (exact GELU) for ``x = source``, float32
    flat arrays that do not overlap (LLVM vectorises the loop only then: in place, its
    run-time overlap check sends it to scalar code), in one vectorised pass (no library call,
    no ``exp``: about 17 operations a value).

    ``erf(x / sqrt 2)`` is the rational ``x P(x^2) / Q(x^2)`` of ``_ERF_P`` / ``_ERF_Q``, with
    ``x`` clamped to +-5.75 (beyond, erf is +-1 in float32) and the quotient to [-1, 1].  The
    error is below 2.5e-7 |x| everywhere and 4e-7 relative for ``x >= -1``; further down,
    ``1 + erf`` cancels as in torch's float32 GELU (whose error there is about 1e-6 absolute).
    Non-finite ``x`` give ``x * Phi(x)`` of ``Phi(inf) = 1`` and ``Phi(-inf) = 0``, and
    ``x <= -5.75`` gives -0.0, as the double-precision formula does below float32's range."""
    p0, p1, p2, p3, p4, p5 = _ERF_P
    q0, q1, q2, q3, q4, q5 = _ERF_Q
    for i in range(source.shape[0]):
        v = source[i]
        x = min(max(v, np.float32(-5.75)), np.float32(5.75))
        s = x * x
        p = np.float32(p4) + s * np.float32(p5)
        p = np.float32(p3) + s * p
        p = np.float32(p2) + s * p
        p = np.float32(p1) + s * p
        p = np.float32(p0) + s * p
        q = np.float32(q4) + s * np.float32(q5)
        q = np.float32(q3) + s * q
        q = np.float32(q2) + s * q
        q = np.float32(q1) + s * q
        q = np.float32(q0) + s * q
        erf = min(max(x * p / q, np.float32(-1.0)), np.float32(1.0))
        target[i] = (np.float32(0.5) * v) * (np.float32(1.0) + erf)


@njit(parallel=True, cache=True, nogil=True)
def gate(
    grad: np.ndarray, x: np.ndarray, low: float, high: float, nan_passes: bool, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out = grad`` where ``low < x < high``, else 0 (flat arrays), in one pass with no mask
    array; with ``nan_passes`` a NaN ``x`` keeps its gradient (ReLU's rule in PyTorch, where
    Hardtanh's zeroes it).  The backward of ReLU, ReLU6 and Hardtanh."""
    size = grad.shape[0]
    block = 1 << 14
    for b in prange((size + block - 1) // block):
        # slices of the block (indices from 0: no wrap-around checks, so the loops vectorise)
        first, end = b * block, min(size, (b + 1) * block)
        g, v, o = grad[first:end], x[first:end], out[first:end]
        if nan_passes:
            for i in range(end - first):
                o[i] = 0 if (v[i] <= low or v[i] >= high) else g[i]
        else:
            for i in range(end - first):
                o[i] = g[i] if (v[i] > low and v[i] < high) else 0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def logistic_f32(
    source: np.ndarray, target: np.ndarray, silu: bool
) -> None:  # pragma: no cover - compiled
    """``target = source * s`` (``silu``) or ``s``, ``s = 1 / (1 + exp(-source))``, float32
    flat arrays that do not overlap (see :func:`gelu_f32`), in one vectorised pass.  With
    ``e = exp(-|x|)`` (never above 1), ``s = 1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)``
    below, so the far negative side keeps its tiny (subnormal) values.  ``exp`` is computed
    in the loop (:func:`_exp_parts`, :func:`_times_pow2`)."""
    for i in range(source.shape[0]):
        v = source[i]
        k, m = _exp_parts(max(-abs(v), np.float32(-104.0)), np.float32(0.0))
        e = _times_pow2(m, k)
        s = (np.float32(1.0) if v >= np.float32(0.0) else e) / (np.float32(1.0) + e)
        s = v if v != v else s  # NaN stays NaN
        target[i] = v * s if silu else s


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def activation_f32(
    source: np.ndarray, bias: np.ndarray, target: np.ndarray, which: int
) -> None:  # pragma: no cover - compiled
    """``target = act(source + bias)`` for float32 ``(rows, width)`` C-contiguous arrays
    (``target`` may be ``source``) and a ``bias`` of ``width`` values, or none when empty:
    ``which`` 0 GELU (:func:`gelu_f32`), 1 SiLU, 2 the sigmoid (:func:`logistic_f32`).
    Blocks of whole rows (about 4096 values) are staged (bias added, rounded as ``x + b``)
    in a scratch buffer, so the vectorised passes never read and write one array; the
    blocks are shared out over the threads."""
    rows, width = source.shape
    total = rows * width
    flat, out = source.reshape(total), target.reshape(total)
    per = max(1, 4096 // max(width, 1))
    blocks = (rows + per - 1) // per
    jobs = max(1, min(256, blocks // 4))  # each job's scratch serves 4+ blocks
    biased = bias.shape[0] > 0
    for job in prange(jobs):
        staged = np.empty(per * width, np.float32)
        for block in range(job * blocks // jobs, (job + 1) * blocks // jobs):
            first, last = block * per * width, min(rows, (block + 1) * per) * width
            count = last - first
            if biased:
                for r in range(count // width):
                    row = flat[first + r * width : first + (r + 1) * width]
                    into = staged[r * width : (r + 1) * width]
                    for j in range(width):
                        into[j] = row[j] + bias[j]
            else:
                part = flat[first:last]
                for j in range(count):
                    staged[j] = part[j]
            if which == 0:
                gelu_f32(staged[:count], out[first:last])
            else:
                logistic_f32(staged[:count], out[first:last], which == 1)


@njit(parallel=True, cache=True, nogil=True)
def winograd_input(
    d: np.ndarray, v: np.ndarray, th: int, tw: int, k: np.ndarray, check: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Winograd F(2x2, 3x3) input transform ``V = B^T d B`` of every 4x4 input tile of every
    frame: ``d`` the slab ``(nb, C, F, 2*th + 2, 2*tw + 2)`` (``F`` frames: the flattened
    leading spatial dimensions, 1 for a 2-D convolution), ``v`` ``(16, F, C, nb, th * tw)``
    (``v[4a + b]`` is entry ``(a, b)``).  Rows first (``B^T d``, four whole slab rows at a
    time), then columns, as the NumPy path does.  One job per (frame, sample, channel).
    ``k`` (constants) is not used: the arguments of :func:`winograd4_input`.  ``check[job]``
    receives a sum over rows 0 and 3 of ``B^T d`` (between them every cell of the slab):
    finite unless the slab holds an Inf or NaN (or the sum overflows)."""
    nb, ch, frames, width = d.shape[0], d.shape[1], d.shape[2], d.shape[4]
    for job in prange(frames * nb * ch):
        f, n, c = job // (nb * ch), (job // ch) % nb, job % ch
        rows = np.empty((4, width), d.dtype)
        seen = np.zeros(width, d.dtype)  # per column: the reduction stays out of the loop
        for i in range(th):
            d0, d1 = d[n, c, f, 2 * i], d[n, c, f, 2 * i + 1]
            d2, d3 = d[n, c, f, 2 * i + 2], d[n, c, f, 2 * i + 3]
            for x in range(width):
                rows[0, x] = d0[x] - d2[x]
                rows[1, x] = d1[x] + d2[x]
                rows[2, x] = d2[x] - d1[x]
                rows[3, x] = d1[x] - d3[x]
                seen[x] += rows[0, x] + rows[3, x]
            for a in range(4):
                r = rows[a]
                t0 = v[4 * a, f, c, n, i * tw : (i + 1) * tw]
                t1 = v[4 * a + 1, f, c, n, i * tw : (i + 1) * tw]
                t2 = v[4 * a + 2, f, c, n, i * tw : (i + 1) * tw]
                t3 = v[4 * a + 3, f, c, n, i * tw : (i + 1) * tw]
                for j in range(tw):
                    t0[j] = r[2 * j] - r[2 * j + 2]
                    t1[j] = r[2 * j + 1] + r[2 * j + 2]
                    t2[j] = r[2 * j + 2] - r[2 * j + 1]
                    t3[j] = r[2 * j + 1] - r[2 * j + 3]
        check[job] = seen.sum()


@njit(parallel=True, cache=True, nogil=True)
def winograd_output(
    m: np.ndarray, out: np.ndarray, frames: np.ndarray, box: np.ndarray, k: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Winograd F(2x2, 3x3) output transform ``Y = A^T M A`` of every tile, written into
    ``out[n0 + n, o, frames[q], y0 + 2i + a, x0 + 2j + b]`` inside the ``bh x bw`` box: ``m``
    ``(16, Q, O, nb, th * tw)``, ``out`` ``(N, O, frames, H, W)``.  Rows first, then
    columns (the tiles whole inside the box in one pass, both columns of each stored
    together), as the NumPy path does.  One job per (output frame, sample, output channel).
    ``box`` holds ``(th, tw, n0, y0, x0, bh, bw)``; ``k`` (constants) is not used."""
    th, tw, n0, y0, x0, bh, bw = box[0], box[1], box[2], box[3], box[4], box[5], box[6]
    nq, channels, nb = m.shape[1], m.shape[2], m.shape[3]
    whole = min(tw, bw // 2)  # tiles with both columns inside the box
    for job in prange(nq * nb * channels):
        q, n, o = job // (nb * channels), (job // channels) % nb, job % channels
        s = np.empty((2, 4, tw), m.dtype)
        for i in range(th):
            lo, hi = i * tw, (i + 1) * tw
            for b in range(4):
                m0, m1 = m[b, q, o, n, lo:hi], m[4 + b, q, o, n, lo:hi]
                m2, m3 = m[8 + b, q, o, n, lo:hi], m[12 + b, q, o, n, lo:hi]
                for j in range(tw):
                    s[0, b, j] = (m0[j] + m1[j]) + m2[j]
                    s[1, b, j] = (m1[j] - m2[j]) - m3[j]
            for a in range(2):
                y = 2 * i + a
                if y >= bh:
                    break
                line = out[n0 + n, o, frames[q], y0 + y, x0 : x0 + bw]
                s0, s1, s2, s3 = s[a, 0], s[a, 1], s[a, 2], s[a, 3]
                for j in range(whole):
                    line[2 * j] = (s0[j] + s1[j]) + s2[j]
                    line[2 * j + 1] = (s1[j] - s2[j]) - s3[j]
                for j in range(whole, tw):
                    line[2 * j] = (s0[j] + s1[j]) + s2[j]
                    if 2 * j + 1 < bw:
                        line[2 * j + 1] = (s1[j] - s2[j]) - s3[j]


@njit(parallel=True, cache=True, nogil=True)
def winograd4_input(
    d: np.ndarray, v: np.ndarray, th: int, tw: int, k: np.ndarray, check: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Winograd F(4x4, 3x3) input transform ``V = B^T d B`` of every 6x6 input tile of every
    frame, ``B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]``: ``d`` the slab
    ``(nb, C, F, 4*th + 2, 4*tw + 2)``, ``v`` ``(36, F, C, nb, th * tw)`` (``v[6a + b]`` is
    entry ``(a, b)``).  Rows first (six whole slab rows at a time), then columns.  One job
    per (frame, sample, channel).  ``k`` holds the constants ``(2, 4, 5)`` in ``d``'s dtype
    (a literal would turn float32 arithmetic into float64).  ``check`` as in
    :func:`winograd_input`, over rows 0 and 5 of ``B^T d``."""
    nb, ch, frames, width = d.shape[0], d.shape[1], d.shape[2], d.shape[4]
    two, four, five = k[0], k[1], k[2]
    for job in prange(frames * nb * ch):
        f, n, c = job // (nb * ch), (job // ch) % nb, job % ch
        rows = np.empty((6, width), d.dtype)
        seen = np.zeros(width, d.dtype)
        for i in range(th):
            d0, d1, d2 = d[n, c, f, 4 * i], d[n, c, f, 4 * i + 1], d[n, c, f, 4 * i + 2]
            d3, d4, d5 = d[n, c, f, 4 * i + 3], d[n, c, f, 4 * i + 4], d[n, c, f, 4 * i + 5]
            for x in range(width):
                rows[0, x] = (four * d0[x] - five * d2[x]) + d4[x]
                rows[1, x] = (d3[x] + d4[x]) - four * (d1[x] + d2[x])
                rows[2, x] = (d4[x] - d3[x]) + four * (d1[x] - d2[x])
                rows[3, x] = (d4[x] - d2[x]) + two * (d3[x] - d1[x])
                rows[4, x] = (d4[x] - d2[x]) - two * (d3[x] - d1[x])
                rows[5, x] = (four * d1[x] - five * d3[x]) + d5[x]
                seen[x] += rows[0, x] + rows[5, x]
            for a in range(6):
                r = rows[a]
                lo, hi = i * tw, (i + 1) * tw
                t0, t1, t2 = (
                    v[6 * a, f, c, n, lo:hi],
                    v[6 * a + 1, f, c, n, lo:hi],
                    v[6 * a + 2, f, c, n, lo:hi],
                )
                t3, t4, t5 = (
                    v[6 * a + 3, f, c, n, lo:hi],
                    v[6 * a + 4, f, c, n, lo:hi],
                    v[6 * a + 5, f, c, n, lo:hi],
                )
                for j in range(tw):
                    e0, e1, e2 = r[4 * j], r[4 * j + 1], r[4 * j + 2]
                    e3, e4, e5 = r[4 * j + 3], r[4 * j + 4], r[4 * j + 5]
                    t0[j] = (four * e0 - five * e2) + e4
                    t1[j] = (e3 + e4) - four * (e1 + e2)
                    t2[j] = (e4 - e3) + four * (e1 - e2)
                    t3[j] = (e4 - e2) + two * (e3 - e1)
                    t4[j] = (e4 - e2) - two * (e3 - e1)
                    t5[j] = (four * e1 - five * e3) + e5
        check[job] = seen.sum()


@njit(parallel=True, cache=True, nogil=True)
def winograd4_output(
    m: np.ndarray, out: np.ndarray, frames: np.ndarray, box: np.ndarray, k: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Winograd F(4x4, 3x3) output transform ``Y = A^T M A``, ``A^T = [[1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]``, of every tile, written
    into ``out[n0 + n, o, frames[q], y0 + 4i + a, x0 + 4j + b]`` inside the ``bh x bw`` box:
    ``m`` ``(36, Q, O, nb, th * tw)``, ``out`` ``(N, O, frames, H, W)``.  Rows first, then
    columns (the tiles whole inside the box in one pass, their four columns stored
    together).  One job per (output frame, sample, output channel).  ``box`` holds ``(th,
    tw, n0, y0, x0, bh, bw)``, ``k`` the constants ``(2, 4, 8)`` in ``m``'s dtype."""
    th, tw, n0, y0, x0, bh, bw = box[0], box[1], box[2], box[3], box[4], box[5], box[6]
    nq, channels, nb = m.shape[1], m.shape[2], m.shape[3]
    two, four, eight = k[0], k[1], k[2]
    whole = min(tw, bw // 4)  # tiles with all four columns inside the box
    for job in prange(nq * nb * channels):
        q, n, o = job // (nb * channels), (job // channels) % nb, job % channels
        s = np.empty((4, 6, tw), m.dtype)
        for i in range(th):
            lo, hi = i * tw, (i + 1) * tw
            for b in range(6):
                m0, m1, m2 = (
                    m[b, q, o, n, lo:hi],
                    m[6 + b, q, o, n, lo:hi],
                    m[12 + b, q, o, n, lo:hi],
                )
                m3, m4, m5 = (
                    m[18 + b, q, o, n, lo:hi],
                    m[24 + b, q, o, n, lo:hi],
                    m[30 + b, q, o, n, lo:hi],
                )
                for j in range(tw):
                    p, r = m1[j] + m2[j], m1[j] - m2[j]
                    u, w = m3[j] + m4[j], m3[j] - m4[j]
                    s[0, b, j] = (m0[j] + p) + u
                    s[1, b, j] = r + two * w
                    s[2, b, j] = p + four * u
                    s[3, b, j] = (r + eight * w) + m5[j]
            for a in range(4):
                y = 4 * i + a
                if y >= bh:
                    break
                line = out[n0 + n, o, frames[q], y0 + y, x0 : x0 + bw]
                s0, s1, s2, s3, s4, s5 = s[a, 0], s[a, 1], s[a, 2], s[a, 3], s[a, 4], s[a, 5]
                for j in range(whole):
                    p, r = s1[j] + s2[j], s1[j] - s2[j]
                    u, w = s3[j] + s4[j], s3[j] - s4[j]
                    line[4 * j] = (s0[j] + p) + u
                    line[4 * j + 1] = r + two * w
                    line[4 * j + 2] = p + four * u
                    line[4 * j + 3] = (r + eight * w) + s5[j]
                for j in range(whole, tw):
                    p, r = s1[j] + s2[j], s1[j] - s2[j]
                    u, w = s3[j] + s4[j], s3[j] - s4[j]
                    left = bw - 4 * j  # columns of this tile inside the box
                    line[4 * j] = (s0[j] + p) + u
                    if left > 1:
                        line[4 * j + 1] = r + two * w
                    if left > 2:
                        line[4 * j + 2] = p + four * u
                    if left > 3:
                        line[4 * j + 3] = (r + eight * w) + s5[j]
