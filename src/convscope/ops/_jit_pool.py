"""Compiled (numba) sliding-window kernels: max and average pooling, depthwise convolution,
and dense convolution with its weight gradient (:func:`dense`, :func:`dense_weight`: every
input channel's rows gathered per job, register-blocked micro-kernels in LLVM vector IR).

Imported only through :func:`convscope.ops.pool.compiled_kernels`.  Every kernel works on
3-D windows (1-D and 2-D calls add singleton dimensions) and runs one job per
(sample, channel) plane and band of output rows (axis 1), shared out with ``prange``.  A job
gathers the rows its band reads into a small per-thread buffer, split into stride phases so
that every kernel tap reads one contiguous run ("wide rows": output position ``p`` of a tap
at flat offset ``t`` reads buffer cell ``t + p``; positions between the end of one output
row and the start of the next are computed and dropped).  The buffer holds the padding
value (zero, or the lowest value for a maximum) outside the input, so the taps need no
bounds checks; it stays in cache, and the only full-size arrays read and written are the
input and the output.  Stride-1 depthwise layers with tall kernels compute their wide rows
with a register-blocked micro-kernel instead (:func:`depthwise_rows`).

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

import functools

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


@njit(cache=True, nogil=True, inline="always")
def _ceil_div(a, b):  # pragma: no cover - compiled
    return -((-a) // b)


@njit(cache=True, nogil=True, inline="always")
def _u(i):  # pragma: no cover - compiled
    """An index known to be non-negative: no wrap-around branch, so loops vectorise."""
    return np.uint64(i)


@njit(cache=True, nogil=True)
def _columns(geom, phases, plane):  # pragma: no cover - compiled
    """Per phase: the first plane column holding an input cell and how many do (the
    divisions done once per call, not once per gathered plane)."""
    w_in, sw, pw, pl_w = geom[2], geom[8], geom[14], plane[2]
    columns = np.empty((phases.shape[0], 2), np.int64)
    for i in range(phases.shape[0]):
        rw = phases[i, 2]
        qlo = min(pl_w, max(0, _ceil_div(pw - rw, sw)))
        columns[i, 0] = qlo
        columns[i, 1] = max(qlo, min(pl_w, _ceil_div(w_in + pw - rw, sw))) - qlo
    return columns


@njit(cache=True, nogil=True, inline="always")
def _gather(
    xf, base, h0, geom, phases, columns, plane, stack, fill, buf, filled
):  # pragma: no cover
    """Phase planes: ``buf`` cell ``((i*stack*Pd + a)*Ph + b)*Pw + q`` = padded input cell
    ``(a*sd + rd, (h0 + b)*sh + rh, q*sw + rw)`` of the plane at flat offset ``base`` of
    ``xf``, for phase ``(rd, rh, rw) = phases[i]`` (its input columns ``columns[i]``, from
    :func:`_columns`); ``fill`` where that cell is padding or past the input.  Each phase
    plane is followed by those of ``stack - 1`` other samples (``buf`` a view from this
    sample's slot).  With ``filled`` the buffer already holds this band's ``fill`` cells (an
    earlier job or sample had the same first row ``h0``): only input cells are copied."""
    d_in, h_in, w_in = geom[0], geom[1], geom[2]
    sd, sh, sw = geom[6], geom[7], geom[8]
    pd, ph, pw = geom[12], geom[13], geom[14]
    pl_d, pl_h, pl_w = plane[0], plane[1], plane[2]
    if not filled:
        for i in range(buf.shape[0]):
            buf[i] = fill
    for i in range(phases.shape[0]):
        rd, rh, rw = phases[i, 0], phases[i, 1], phases[i, 2]
        qlo, inside = columns[i, 0], columns[i, 1]
        first = qlo * sw + rw - pw
        for a in range(pl_d):
            di = a * sd + rd - pd
            if di < 0 or di >= d_in:
                continue
            for b in range(pl_h):
                hi = (h0 + b) * sh + rh - ph
                if hi < 0 or hi >= h_in:
                    continue
                row = ((i * stack * pl_d + a) * pl_h + b) * pl_w + qlo
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
def _tap_starts(tap_phase, tap_q, plane, stack):  # pragma: no cover - compiled
    """Flat offset in the buffer of every tap's first cell (its phase plane, of the first of
    ``stack`` samples, plus its offset)."""
    cells = plane[0] * plane[1] * plane[2] * stack
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


@njit(cache=True, nogil=True, inline="always")
def _store_view(acc, target, geom, plane, h0, rows):  # pragma: no cover - compiled
    """:func:`_store` into ``target``, one ``(OD, OH, OW)`` output plane of any strides (a
    stride phase of a larger output)."""
    for a in range(geom[3]):
        for b in range(rows):
            begin = (a * plane[1] + b) * plane[2]
            line = target[a, h0 + b]
            for q in range(geom[5]):
                line[q] = acc[_u(begin + q)]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _multiply_add(buf, starts, wf, first, wide, acc):  # pragma: no cover - compiled
    """``acc[p] = sum_t weights[t] * buf[starts[t] + p]`` for ``p < wide``, the weights
    ``wf[first:first + taps]``, the taps added one after another (in one pass for 3x3, else
    four per pass: the same additions in the same order, fewer loads and stores of ``acc``)."""
    taps = starts.shape[0]
    weights = wf[first : first + taps]
    t = 0
    if taps == 9:
        w0, w1, w2, w3, w4 = weights[0], weights[1], weights[2], weights[3], weights[4]
        w5, w6, w7, w8 = weights[5], weights[6], weights[7], weights[8]
        o0, o1, o2, o3, o4 = starts[0], starts[1], starts[2], starts[3], starts[4]
        o5, o6, o7, o8 = starts[5], starts[6], starts[7], starts[8]
        for p in range(wide):
            v = w0 * buf[_u(o0 + p)] + w1 * buf[_u(o1 + p)]
            v = (v + w2 * buf[_u(o2 + p)]) + w3 * buf[_u(o3 + p)]
            v = (v + w4 * buf[_u(o4 + p)]) + w5 * buf[_u(o5 + p)]
            v = (v + w6 * buf[_u(o6 + p)]) + w7 * buf[_u(o7 + p)]
            acc[p] = v + w8 * buf[_u(o8 + p)]
        return
    while t + 4 <= taps:
        w0, w1, w2, w3 = weights[t], weights[t + 1], weights[t + 2], weights[t + 3]
        o0, o1, o2, o3 = starts[t], starts[t + 1], starts[t + 2], starts[t + 3]
        if t == 0:
            for p in range(wide):
                v = w0 * buf[_u(o0 + p)] + w1 * buf[_u(o1 + p)]
                acc[p] = (v + w2 * buf[_u(o2 + p)]) + w3 * buf[_u(o3 + p)]
        else:
            for p in range(wide):
                v = (acc[p] + w0 * buf[_u(o0 + p)]) + w1 * buf[_u(o1 + p)]
                acc[p] = (v + w2 * buf[_u(o2 + p)]) + w3 * buf[_u(o3 + p)]
        t += 4
    if t == 0:
        for p in range(wide):
            acc[p] = 0
    while t < taps:
        wt, o0 = weights[t], starts[t]
        for p in range(wide):
            acc[p] += wt * buf[_u(o0 + p)]
        t += 1


@njit(cache=True, nogil=True)
def _maximum(buf, starts, wide, acc):  # pragma: no cover - compiled
    """``acc[p] = max_t buf[starts[t] + p]``, a NaN winning, for ``p < wide``."""
    o0 = starts[0]
    for p in range(wide):
        acc[p] = buf[_u(o0 + p)]
    for t in range(1, starts.shape[0]):
        o0 = starts[t]
        for p in range(wide):
            v = buf[_u(o0 + p)]
            a = acc[p]
            acc[p] = v if (v > a or v != v) else a


@njit(cache=True, nogil=True)
def _total(buf, starts, wide, acc):  # pragma: no cover - compiled
    """``acc[p] = sum_t buf[starts[t] + p]`` (taps in order) for ``p < wide``."""
    for p in range(wide):
        acc[p] = 0
    for t in range(starts.shape[0]):
        o0 = starts[t]
        for p in range(wide):
            acc[p] += buf[_u(o0 + p)]


# ---- a register-blocked micro-kernel in LLVM vector IR (numba's loop vectoriser cannot
# block rows itself).  It lives in this file because numba's on-disk cache of a kernel is
# keyed by the kernel's own source file: code it inlines from elsewhere could go stale.


@functools.cache
def _host_features() -> dict:
    """The CPU features LLVM detects on this machine (``{"avx512f": True, ...}``)."""
    from llvmlite import binding

    return dict(binding.get_host_cpu_features())


def vector_bytes() -> int:
    """Bytes in one vector register of this machine (64 with AVX-512F, else 32)."""
    return 64 if _host_features().get("avx512f", False) else 32


def fused_multiply_add() -> bool:
    """True when this machine has vector fused multiply-add (x86's FMA3 or AVX-512F): the
    micro-kernel's ``llvm.fma`` calls then compile to single instructions, not library calls
    per element."""
    features = _host_features()
    return bool(features.get("fma", False) or features.get("avx512f", False))


def block_rows() -> int:
    """Output rows one :func:`depthwise_rows` call computes: each input row it loads serves
    up to this many accumulators.  8 with AVX-512's 32 vector registers (a standalone driver,
    one core, 13x13 taps: 4 rows 78 GFLOP/s, 8 rows 101, 12 rows 108 but 7x7 47 against 59),
    else 4 (16 registers: accumulators and the rows in flight must fit)."""
    return 8 if vector_bytes() == 64 else 4


def lanes(itemsize: int) -> int:
    """Elements of ``itemsize`` bytes in one vector: 16 float32 with AVX-512."""
    return vector_bytes() // itemsize


def _vector_fma(builder: ir.IRBuilder, vec: ir.VectorType) -> object:
    """The ``llvm.fma`` intrinsic for vectors of type ``vec`` (one instruction with FMA)."""
    bits = 64 if isinstance(vec.element, ir.DoubleType) else 32
    name = f"llvm.fma.v{vec.count}f{bits}"
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), name)


def _splat(builder: ir.IRBuilder, value: object, vec: ir.VectorType) -> object:
    """``value`` (a scalar) in every lane of a vector of type ``vec``."""
    i32 = ir.IntType(32)
    undef = ir.Constant(vec, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(i32, 0))
    return builder.shuffle_vector(
        first, undef, ir.Constant(ir.VectorType(i32, vec.count), [0] * vec.count)
    )


@intrinsic
def depthwise_rows(
    typingctx: object,
    buf: types.Array,
    start: types.Integer,
    stride: types.Integer,
    weights: types.Array,
    first: types.Integer,
    kernel_rows: types.Integer,
    kernel_cols: types.Integer,
    acc: types.Array,
    offset: types.Integer,
    acc_stride: types.Integer,
) -> tuple:  # pragma: no cover - compiled
    """``acc[offset + j*acc_stride + l] = sum_{kh, kw} weights[first + kh*kernel_cols + kw] *
    buf[start + (j + kh)*stride + kw + l]`` for the ``R`` (:func:`block_rows`) rows ``j``
    and the lanes ``l`` of one vector, column by column of taps (one fused multiply-add each).

    Loops over ``kw`` then ``kh``; the ``R`` input rows a step needs stay in registers, so
    each step loads one new input row and one weight for ``R`` multiply-adds.  ``buf`` must
    be readable ``R + kernel_rows - 1`` rows of ``stride`` down from ``start`` (each
    ``kernel_cols - 1`` cells and a vector across).
    """
    dtype = buf.dtype
    rows_per_call = block_rows()
    sig = types.void(
        buf, start, stride, weights, first, kernel_rows, kernel_cols, acc, offset, acc_stride
    )

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list) -> object:
        (b_, start_, stride_, w_, first_, krows_, kcols_, acc_, offset_, astride_) = args
        scalar = context.get_value_type(dtype)
        width = lanes(dtype.bitwidth // 8)
        vec = ir.VectorType(scalar, width)
        i64 = ir.IntType(64)
        start_, stride_, first_, krows_, kcols_, offset_, astride_ = (
            context.cast(builder, value, ty, types.int64)
            for value, ty in zip(
                (start_, stride_, first_, krows_, kcols_, offset_, astride_),
                [signature.args[i] for i in (1, 2, 4, 5, 6, 8, 9)],
                strict=True,
            )
        )

        def data(index: int, value: object) -> object:
            array = cgutils.create_struct_proxy(signature.args[index])(context, builder, value)
            return array.data

        source = builder.gep(data(0, b_), [start_])
        taps = builder.gep(data(3, w_), [first_])
        target = builder.gep(data(7, acc_), [offset_])
        fma = _vector_fma(builder, vec)
        zero = ir.Constant(vec, [0.0] * width)
        one = ir.Constant(i64, 1)

        def row(index: object, column: object) -> object:
            cell = builder.add(builder.mul(index, stride_), column)
            pointer = builder.bitcast(builder.gep(source, [cell]), vec.as_pointer())
            return builder.load(pointer, align=dtype.bitwidth // 8)

        fn = builder.function
        entry = builder.block
        col_head, col_start = fn.append_basic_block("col_head"), fn.append_basic_block("col_start")
        row_head, row_body = fn.append_basic_block("row_head"), fn.append_basic_block("row_body")
        col_next, done = fn.append_basic_block("col_next"), fn.append_basic_block("done")
        builder.branch(col_head)

        builder.position_at_end(col_head)  # for kw in range(kernel_cols)
        kw = builder.phi(i64)
        kw.add_incoming(ir.Constant(i64, 0), entry)
        sums = [builder.phi(vec) for _ in range(rows_per_call)]
        for s in sums:
            s.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", kw, kcols_), col_start, done)

        builder.position_at_end(col_start)  # the first rows_per_call - 1 input rows of this column
        window0 = [row(ir.Constant(i64, j), kw) for j in range(rows_per_call - 1)]
        builder.branch(row_head)

        builder.position_at_end(row_head)  # for kh in range(kernel_rows)
        kh = builder.phi(i64)
        kh.add_incoming(ir.Constant(i64, 0), col_start)
        inner = [builder.phi(vec) for _ in range(rows_per_call)]
        window = [builder.phi(vec) for _ in range(rows_per_call - 1)]
        for s, outer in zip(inner, sums, strict=True):
            s.add_incoming(outer, col_start)
        for w, loaded in zip(window, window0, strict=True):
            w.add_incoming(loaded, col_start)
        builder.cbranch(builder.icmp_signed("<", kh, krows_), row_body, col_next)

        builder.position_at_end(row_body)  # input rows kh .. kh + rows_per_call - 1
        rows = [*window, row(builder.add(kh, ir.Constant(i64, rows_per_call - 1)), kw)]
        tap = builder.load(builder.gep(taps, [builder.add(builder.mul(kh, kcols_), kw)]))
        weight = _splat(builder, tap, vec)
        updated = [builder.call(fma, [weight, r, s]) for r, s in zip(rows, inner, strict=True)]
        body_end = builder.block
        kh.add_incoming(builder.add(kh, one), body_end)
        for s, new in zip(inner, updated, strict=True):
            s.add_incoming(new, body_end)
        for w, new in zip(window, rows[1:], strict=True):
            w.add_incoming(new, body_end)
        builder.branch(row_head)

        builder.position_at_end(col_next)
        kw.add_incoming(builder.add(kw, one), col_next)
        for s, new in zip(sums, inner, strict=True):
            s.add_incoming(new, col_next)
        builder.branch(col_head)

        builder.position_at_end(done)
        for j, s in enumerate(sums):
            cell = builder.mul(ir.Constant(i64, j), astride_)
            pointer = builder.bitcast(builder.gep(target, [cell]), vec.as_pointer())
            builder.store(s, pointer, align=dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


@njit(parallel=True, cache=True, nogil=True)
def depthwise(
    x,
    w,
    geom,
    phases,
    tap_phase,
    tap_q,
    reach,
    band,
    stack,
    chunks,
    rows_per_call,
    lane_count,
    out,
):  # pragma: no cover - compiled
    """``out[n, c, m] = sum_t w[c, m, t] * window_t(x[n, c])`` with zero padding, the taps
    added one after another in row-major order (four per pass over the accumulator).

    ``x`` (N, C, D, H, W) and ``w`` (C, M, T) contiguous, ``out`` (N, C, MD, MH, MW, OD, OH,
    OW) of any strides, ``M = MD * MH * MW``: output ``m`` of channel ``c`` is written to
    ``out[n, c, md, mh, mw]`` for ``m = (md * MH + mh) * MW + mw`` (a channel multiplier is
    ``(N, C*M, ...)`` viewed as ``(N, C, M, 1, 1, ...)``; the stride phases of a transposed
    depthwise convolution are ``M`` outputs, each a strided view of one plane).  A job is a
    channel of ``stack`` samples (more than one only when a band is the whole plane): their
    planes lie one after another in each phase of the buffer, so every tap is one run over
    all of them, long enough to vectorise even for 7x7 planes.  With ``rows_per_call`` (``stack`` 1,
    stride 1, dilation 1, one output and kernel frame along D: see
    ``convscope.ops.depthwise.register_blocked``) each band is computed by the
    register-blocked :func:`depthwise_rows`, ``rows_per_call`` rows (``block_rows()``) by
    ``lane_count`` columns (``lanes(itemsize)``) at a time, the taps added column by column.
    """
    nb, ch = x.shape[0], x.shape[1]
    mult, taps = w.shape[1], w.shape[2]
    split = np.empty((mult, 3), np.int64)  # (md, mh, mw) of every output m, divided once
    for m in range(mult):
        split[m, 0] = m // (out.shape[3] * out.shape[4])
        split[m, 1] = (m // out.shape[4]) % out.shape[3]
        split[m, 2] = m % out.shape[4]
    xf, wf = x.reshape(x.size), w.reshape(w.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    bands = _ceil_div(geom[4], band)
    jobs = _ceil_div(nb, stack) * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane, stack)
    zero = x.dtype.type(0)
    ow = geom[5]
    buffered, accumulated, width = phases.shape[0] * stack * cells, stack * cells, 0
    if rows_per_call:
        width = _ceil_div(ow, lane_count) * lane_count
        # a band's last block of rows and each row's last vector read past its cells
        buffered += rows_per_call * plane[2] + width + lane_count
        accumulated = _ceil_div(min(band, geom[4]), rows_per_call) * rows_per_call * width
    for chunk in prange(count):
        buf = np.empty(buffered, x.dtype)
        acc = np.empty(accumulated, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            block, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            n0 = block * stack
            samples = min(stack, nb - n0)
            for s in range(samples):
                base = ((n0 + s) * ch + c) * in_plane
                at, filled = buf[s * cells :], h0 == last or s > 0
                _gather(xf, base, h0, geom, phases, columns, plane, stack, zero, at, filled)
            last = h0
            wide += (samples - 1) * cells  # the run goes on through the stacked planes
            for m in range(mult):
                first = (c * mult + m) * taps
                md, mh, mw = split[m, 0], split[m, 1], split[m, 2]
                if not rows_per_call:
                    _multiply_add(buf, starts, wf, first, wide, acc)
                    for s in range(samples):
                        target = out[n0 + s, c, md, mh, mw]
                        _store_view(acc[s * cells :], target, geom, plane, h0, rows)
                    continue
                for b0 in range(0, rows, rows_per_call):
                    for q0 in range(0, ow, lane_count):
                        depthwise_rows(
                            buf, b0 * plane[2] + q0, plane[2], wf, first,
                            reach[1] + 1, reach[2] + 1, acc, b0 * width + q0, width,
                        )  # fmt: skip
                target = out[n0, c, md, mh, mw]
                for b in range(rows):
                    line = target[0, h0 + b]
                    for q in range(ow):
                        line[q] = acc[_u(b * width + q)]


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _correlate(buf, starts, rows, wide, zero, total):  # pragma: no cover - compiled
    """``total[t] += sum_p rows[p] * buf[starts[t] + p]`` for ``p < wide`` (each tap's sum
    vectorised in the input's dtype, then added to the float64 ``total``)."""
    for t in range(starts.shape[0]):
        o0 = starts[t]
        s = zero
        for p in range(wide):
            s += rows[p] * buf[_u(o0 + p)]
        total[t] += s


@njit(parallel=True, cache=True, nogil=True)
def depthwise_weight(
    x, grad, geom, phases, tap_phase, tap_q, reach, band, stack, total
):  # pragma: no cover - compiled
    """Weight gradient of :func:`depthwise`, added into the float64 ``total`` (C, M, T):
    ``total[c, m, t] += sum_n sum_p grad[n, c*M + m, p] * window_t(x[n, c])[p]``, one job per
    input channel (its samples, ``stack`` at a time as there, and bands in turn), the output
    gradient laid out in the same wide rows as the gathered input (zero past each output
    row)."""
    nb, ch = x.shape[0], x.shape[1]
    mult = total.shape[1]
    xf, gf = x.reshape(x.size), grad.reshape(grad.size)
    od, oh, ow = geom[3], geom[4], geom[5]
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    out_plane = od * oh * ow
    bands = _ceil_div(oh, band)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane, stack)
    zero = x.dtype.type(0)
    for c in prange(ch):
        buf = np.empty(phases.shape[0] * stack * cells, x.dtype)
        rows_buf = np.zeros(stack * cells, x.dtype)
        last = -1
        for n0 in range(0, nb, stack):
            samples = min(stack, nb - n0)
            for job_band in range(bands):
                h0 = job_band * band
                rows = min(band, oh - h0)
                wide = (od - 1) * plane[1] * plane[2] + (rows - 1) * plane[2] + ow
                for s in range(samples):
                    base = ((n0 + s) * ch + c) * in_plane
                    at, filled = buf[s * cells :], h0 == last or s > 0
                    _gather(xf, base, h0, geom, phases, columns, plane, stack, zero, at, filled)
                last = h0
                for m in range(mult):
                    for s in range(samples):
                        gbase = ((n0 + s) * ch * mult + c * mult + m) * out_plane
                        for a in range(od):
                            for b in range(rows):
                                begin = s * cells + (a * plane[1] + b) * plane[2]
                                line = gbase + (a * oh + h0 + b) * ow
                                for q in range(ow):
                                    rows_buf[_u(begin + q)] = gf[_u(line + q)]
                                for q in range(ow, plane[2]):  # stays zero: past the output row
                                    rows_buf[_u(begin + q)] = zero
                    span = (samples - 1) * cells + wide
                    _correlate(buf, starts, rows_buf, span, zero, total[c, m])


# ---- dense convolution: a register-blocked micro-kernel over every input channel's gathered
# wide rows (output channels x vectors of positions in registers, one broadcast weight and a
# few vector loads per step)


def dense_block() -> tuple[int, int]:
    """``(output channels, vectors)`` one :func:`dense_tile` call keeps in registers: 8 x 3
    with AVX-512's 32 vector registers (24 accumulators, 3 input vectors, a broadcast weight),
    4 x 2 with 16."""
    return (8, 3) if vector_bytes() == 64 else (4, 2)


@intrinsic
def dense_tile(
    typingctx: object,
    buf: types.Array,
    start: types.Integer,
    cstride: types.Integer,
    channels: types.Integer,
    starts: types.Array,
    w: types.Array,
    wstart: types.Integer,
    wrow: types.Integer,
    rows: types.Integer,
    acc: types.Array,
    astart: types.Integer,
    astride: types.Integer,
    accumulate: types.Integer,
) -> tuple:  # pragma: no cover - compiled
    """``acc[astart + j*astride + p] (+)= sum_{c < channels} sum_t w[wstart + j'*wrow + c*T
    + t] * buf[start + c*cstride + starts[t] + p]`` for the ``R`` rows ``j`` and ``V``
    vectors of positions ``p`` of :func:`dense_block`, ``j' = min(j, rows - 1)`` (rows past
    ``rows`` repeat the last one and are ignored by the caller), ``T = len(starts)``;
    ``accumulate`` 0 stores the sums, else adds them to what ``acc`` holds.  Channels in
    the outer loop, taps inside, each step one broadcast weight per row and ``V`` loads.  The
    call's sums start from zero: called on blocks of 16 channels, each output is a sum of
    the blocks' sums, as in oneDNN's direct convolution (float32 errors at PyTorch's level;
    one running sum over all channels had 3-7x PyTorch's error on ResNet-18's layers)."""
    dtype = buf.dtype
    rows_per_call, vectors = dense_block()
    sig = types.void(
        buf, start, cstride, channels, starts, w, wstart, wrow, rows, acc, astart, astride,
        accumulate,
    )  # fmt: skip

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list) -> object:
        (b_, start_, cstride_, channels_, starts_, w_, wstart_, wrow_, rows_, acc_) = args[:10]
        astart_, astride_, accumulate_ = args[10:]
        integers = (start_, cstride_, channels_, wstart_, wrow_, rows_, astart_, astride_)
        start_, cstride_, channels_, wstart_, wrow_, rows_, astart_, astride_ = (
            context.cast(builder, value, signature.args[i], types.int64)
            for value, i in zip(integers, (1, 2, 3, 6, 7, 8, 10, 11), strict=True)
        )
        accumulate_ = context.cast(builder, accumulate_, signature.args[12], types.int64)
        scalar = context.get_value_type(dtype)
        width = lanes(dtype.bitwidth // 8)
        vec = ir.VectorType(scalar, width)
        i64 = ir.IntType(64)
        align = dtype.bitwidth // 8

        def proxy(index: int, value: object) -> object:
            return cgutils.create_struct_proxy(signature.args[index])(context, builder, value)

        offsets = proxy(4, starts_)
        taps = builder.extract_value(offsets.shape, 0)
        source = builder.gep(proxy(0, b_).data, [start_])
        weights = proxy(5, w_).data
        target = builder.gep(proxy(9, acc_).data, [astart_])
        fma = _vector_fma(builder, vec)
        zero = ir.Constant(vec, [0.0] * width)
        one = ir.Constant(i64, 1)

        def constant(value: int) -> object:
            return ir.Constant(i64, value)

        def cell_pointer(j: int, v: int) -> object:
            cell = builder.add(builder.mul(constant(j), astride_), constant(v * width))
            return builder.bitcast(builder.gep(target, [cell]), vec.as_pointer())

        last = builder.sub(rows_, one)
        row_starts = []  # each register row's first weight (rows past ``rows`` repeat the last)
        for j in range(rows_per_call):
            clamped = builder.select(
                builder.icmp_signed("<", constant(j), rows_), constant(j), last
            )
            row_starts.append(
                builder.gep(weights, [builder.add(wstart_, builder.mul(clamped, wrow_))])
            )
        initial = [zero] * (rows_per_call * vectors)
        fn = builder.function
        entry = builder.block
        blocks = ("channel_head", "tap_head", "tap_body", "channel_next", "done")
        channel_head, tap_head, tap_body, channel_next, done = (
            fn.append_basic_block(b) for b in blocks
        )
        builder.branch(channel_head)

        builder.position_at_end(channel_head)  # for c in range(channels)
        c = builder.phi(i64)
        c.add_incoming(constant(0), entry)
        sums = [builder.phi(vec) for _ in initial]
        for s, value in zip(sums, initial, strict=True):
            s.add_incoming(value, entry)
        builder.cbranch(builder.icmp_signed("<", c, channels_), tap_head, done)

        builder.position_at_end(tap_head)  # for t in range(taps)
        t = builder.phi(i64)
        t.add_incoming(constant(0), channel_head)
        inner = [builder.phi(vec) for _ in initial]
        for s, outer in zip(inner, sums, strict=True):
            s.add_incoming(outer, channel_head)
        builder.cbranch(builder.icmp_signed("<", t, taps), tap_body, channel_next)

        builder.position_at_end(tap_body)
        offset = builder.load(builder.gep(offsets.data, [t]))
        base = builder.add(builder.mul(c, cstride_), offset)
        loaded = []
        for v in range(vectors):
            cell = builder.gep(source, [builder.add(base, constant(v * width))])
            loaded.append(builder.load(builder.bitcast(cell, vec.as_pointer()), align=align))
        tap = builder.add(builder.mul(c, taps), t)
        updated = []
        for j in range(rows_per_call):
            weight = builder.load(builder.gep(row_starts[j], [tap]))
            spread = _splat(builder, weight, vec)
            for v in range(vectors):
                updated.append(builder.call(fma, [spread, loaded[v], inner[j * vectors + v]]))
        body_end = builder.block
        t.add_incoming(builder.add(t, one), body_end)
        for s, new in zip(inner, updated, strict=True):
            s.add_incoming(new, body_end)
        builder.branch(tap_head)

        builder.position_at_end(channel_next)
        c.add_incoming(builder.add(c, one), channel_next)
        for s, new in zip(sums, inner, strict=True):
            s.add_incoming(new, channel_next)
        builder.branch(channel_head)

        builder.position_at_end(done)
        adding = builder.icmp_signed("!=", accumulate_, constant(0))
        for j in range(rows_per_call):
            for v in range(vectors):
                pointer = cell_pointer(j, v)
                new = sums[j * vectors + v]
                total = builder.fadd(builder.load(pointer, align=align), new)
                builder.store(builder.select(adding, total, new), pointer, align=align)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _gather_channels(
    xf,
    n0,
    samples,
    ch,
    in_plane,
    h0,
    geom,
    phases,
    columns,
    plane,
    stack,
    zero,
    buf,
    cstride,
    cells,
    filled,
):  # pragma: no cover - compiled
    """:func:`_gather` for every input channel of ``samples`` samples from ``n0``: channel
    ``c``'s phase planes from ``buf[c * cstride]``, each sample's ``cells`` after the last's
    (stacked as :func:`depthwise` stacks them); ``filled``: the padding cells are in place."""
    for c in range(ch):
        for s in range(samples):
            at = buf[c * cstride + s * cells : (c + 1) * cstride]
            base = ((n0 + s) * ch + c) * in_plane
            _gather(xf, base, h0, geom, phases, columns, plane, stack, zero, at, filled or s > 0)


@njit(parallel=True, cache=True, nogil=True)
def dense(
    x,
    w,
    geom,
    phases,
    tap_phase,
    tap_q,
    reach,
    band,
    out_block,
    channel_block,
    rows_per_call,
    span,
    chunks,
    out,
):  # pragma: no cover - compiled
    """``out[n, o] = sum_c sum_t w[o, c, t] * window_t(x[n, c])`` with zero padding: a dense
    convolution (one group).  ``x`` (N, C, D, H, W) and ``w`` (O, C, T) contiguous, ``out``
    (N, O, OD, OH, OW) of any strides.

    A job is a sample, a band of ``band`` output rows and ``out_block`` output channels
    (jobs of the same sample and band, consecutive within a chunk, gather once).  It gathers
    every input channel's phase planes of the band into one buffer (``cstride`` cells per
    channel), then sums ``channel_block`` channels at a time (their planes stay in cache) into
    per-job wide rows, :func:`dense_tile` computing ``R`` output channels by ``span`` (``V``
    vectors) positions per call (``rows_per_call`` is its ``R``), and finally stores the
    valid positions.
    """
    nb, ch = x.shape[0], x.shape[1]
    och, taps = w.shape[0], w.shape[2]
    xf, wf = x.reshape(x.size), w.reshape(w.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    bands = _ceil_div(geom[4], band)
    out_groups = _ceil_div(och, out_block)
    jobs = nb * bands * out_groups
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    cstride = phases.shape[0] * cells
    starts = _tap_starts(tap_phase, tap_q, plane, 1)
    full_wide = (geom[3] - 1) * plane[1] * plane[2] + (min(band, geom[4]) - 1) * plane[2] + geom[5]
    width = _ceil_div(full_wide, span) * span
    zero = x.dtype.type(0)
    for chunk in prange(count):
        buf = np.empty(ch * cstride + span, x.dtype)
        buf[ch * cstride :] = zero  # read by the last positions of the last channel's taps
        acc = np.empty(out_block * width, x.dtype)
        last_sample, last_row = -1, -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            o0 = (job % out_groups) * out_block
            n = job // (out_groups * bands)
            h0 = ((job // out_groups) % bands) * band
            rows = min(band, geom[4] - h0)
            wide = (geom[3] - 1) * plane[1] * plane[2] + (rows - 1) * plane[2] + geom[5]
            if n != last_sample or h0 != last_row:
                _gather_channels(xf, n, 1, ch, in_plane, h0, geom, phases, columns, plane, 1,
                                 zero, buf, cstride, cells, h0 == last_row)  # fmt: skip
                last_sample, last_row = n, h0
            o1 = min(och, o0 + out_block)
            for c0 in range(0, ch, channel_block):
                cn = min(channel_block, ch - c0)
                for b in range(o0, o1, rows_per_call):
                    for q0 in range(0, wide, span):
                        dense_tile(
                            buf, c0 * cstride + q0, cstride, cn, starts, wf, (b * ch + c0) * taps,
                            ch * taps, o1 - b, acc, (b - o0) * width + q0, width, c0,
                        )  # fmt: skip
            for o in range(o0, o1):
                _store_view(acc[(o - o0) * width :], out[n, o], geom, plane, h0, rows)


def dense_weight_block() -> tuple[int, int]:
    """``(output channels, input channels)`` of one :func:`dense_weight_tile` call: 4 x 6
    accumulators with AVX-512's 32 registers (plus 4 gradient rows and an input vector),
    2 x 4 with 16."""
    return (4, 6) if vector_bytes() == 64 else (2, 4)


@intrinsic
def dense_weight_tile(
    typingctx: object,
    buf: types.Array,
    start: types.Integer,
    cstride: types.Integer,
    channels: types.Integer,
    grad: types.Array,
    gstart: types.Integer,
    grow: types.Integer,
    rows: types.Integer,
    length: types.Integer,
    part: types.Array,
) -> tuple:  # pragma: no cover - compiled
    """``part[j*C + i] = sum_{p < length} grad[gstart + j'*grow + p] * buf[start +
    i'*cstride + p]`` for the ``R x C`` (:func:`dense_weight_block`) pairs of gradient rows
    ``j`` and input channels ``i``, ``j' = min(j, rows - 1)`` and ``i' = min(i, channels -
    1)`` (pairs past them repeat the last and are ignored by the caller); ``length`` a
    multiple of the vector width.  Each lane sums its positions in order, the lanes are then
    added pairwise, and ``part`` (float64) receives the result."""
    dtype = buf.dtype
    out_rows, in_rows = dense_weight_block()
    sig = types.void(buf, start, cstride, channels, grad, gstart, grow, rows, length, part)

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list) -> object:
        b_, start_, cstride_, channels_, g_, gstart_, grow_, rows_, length_, part_ = args
        integers = (start_, cstride_, channels_, gstart_, grow_, rows_, length_)
        start_, cstride_, channels_, gstart_, grow_, rows_, length_ = (
            context.cast(builder, value, signature.args[i], types.int64)
            for value, i in zip(integers, (1, 2, 3, 5, 6, 7, 8), strict=True)
        )
        scalar = context.get_value_type(dtype)
        width = lanes(dtype.bitwidth // 8)
        vec = ir.VectorType(scalar, width)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        align = dtype.bitwidth // 8

        def data(index: int, value: object) -> object:
            return cgutils.create_struct_proxy(signature.args[index])(context, builder, value).data

        def constant(value: int) -> object:
            return ir.Constant(i64, value)

        def clamped_starts(count: int, limit: object, base: object, stride: object) -> list:
            last = builder.sub(limit, constant(1))
            starts = []
            for j in range(count):
                inside = builder.icmp_signed("<", constant(j), limit)
                row = builder.select(inside, constant(j), last)
                starts.append(builder.add(base, builder.mul(row, stride)))
            return starts

        source, gradient = data(0, b_), data(4, g_)
        x_rows = clamped_starts(in_rows, channels_, start_, cstride_)
        g_rows = clamped_starts(out_rows, rows_, gstart_, grow_)
        fma = _vector_fma(builder, vec)
        zero = ir.Constant(vec, [0.0] * width)
        fn = builder.function
        entry = builder.block
        head, body, done = (fn.append_basic_block(n) for n in ("head", "body", "done"))
        builder.branch(head)

        builder.position_at_end(head)  # for p in range(0, length, width)
        p = builder.phi(i64)
        p.add_incoming(constant(0), entry)
        sums = [builder.phi(vec) for _ in range(out_rows * in_rows)]
        for s in sums:
            s.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", p, length_), body, done)

        builder.position_at_end(body)

        def load(pointer: object, first: object) -> object:
            cell = builder.gep(pointer, [builder.add(first, p)])
            return builder.load(builder.bitcast(cell, vec.as_pointer()), align=align)

        g_vectors = [load(gradient, first) for first in g_rows]
        updated = [None] * len(sums)
        for i, first in enumerate(x_rows):
            x_vector = load(source, first)
            for j in range(out_rows):
                k = j * in_rows + i
                updated[k] = builder.call(fma, [g_vectors[j], x_vector, sums[k]])
        body_end = builder.block
        p.add_incoming(builder.add(p, constant(width)), body_end)
        for s, new in zip(sums, updated, strict=True):
            s.add_incoming(new, body_end)
        builder.branch(head)

        builder.position_at_end(done)
        target = data(9, part_)
        double = ir.DoubleType()
        for k, s in enumerate(sums):
            half = width
            while half > 1:  # lanes added pairwise: 16 -> 8 -> 4 -> 2 -> 1
                half //= 2
                upper = builder.shuffle_vector(
                    s,
                    s,
                    ir.Constant(
                        ir.VectorType(i32, width),
                        [half + m for m in range(half)] + [0] * (width - half),
                    ),
                )
                s = builder.fadd(s, upper)
            total = builder.extract_element(s, ir.Constant(i32, 0))
            if not isinstance(scalar, ir.DoubleType):
                total = builder.fpext(total, double)
            builder.store(total, builder.gep(target, [constant(k)]))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _load_rows(gf, gbase, geom, plane, h0, rows, row_buf):  # pragma: no cover - compiled
    """The output rows ``h0 .. h0 + rows`` of the gradient plane at flat offset ``gbase`` laid
    out as :func:`_store` reads them (wide rows of ``plane``'s width) in ``row_buf``, whose
    other cells the caller has zeroed."""
    od, oh, ow = geom[3], geom[4], geom[5]
    for a in range(od):
        for b in range(rows):
            begin = (a * plane[1] + b) * plane[2]
            line = gbase + (a * oh + h0 + b) * ow
            for q in range(ow):
                row_buf[_u(begin + q)] = gf[_u(line + q)]


@njit(parallel=True, cache=True, nogil=True)
def dense_weight(
    x,
    grad,
    geom,
    phases,
    tap_phase,
    tap_q,
    reach,
    band,
    stack,
    out_rows,
    in_rows,
    span,
    chunks,
    totals,
):  # pragma: no cover - compiled
    """Weight gradient of :func:`dense`, added into ``totals`` (chunks, O, C, T) float64, one
    part per chunk of jobs (the caller adds the parts): ``sum_n sum_p grad[n, o, p] *
    window_t(x[n, c])[p]``.  A job (``stack`` samples, more than one only when a band is the
    whole plane, and a band of rows) gathers every input channel's phase planes as
    :func:`dense` does, the samples' planes one after another in each phase (as
    :func:`depthwise` stacks them), and every output channel's gradient rows in the same wide
    rows (zero between them); then :func:`dense_weight_tile` sums blocks of ``out_rows x
    in_rows`` (its :func:`dense_weight_block`) channels per tap over ``span``-rounded runs
    through all the stacked samples."""
    nb, ch = x.shape[0], x.shape[1]
    och, taps = grad.shape[1], tap_q.shape[0]
    xf, gf = x.reshape(x.size), grad.reshape(grad.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    out_plane = geom[3] * geom[4] * geom[5]
    bands = _ceil_div(geom[4], band)
    jobs = _ceil_div(nb, stack) * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    cstride = phases.shape[0] * stack * cells
    starts = _tap_starts(tap_phase, tap_q, plane, stack)
    full_wide = (geom[3] - 1) * plane[1] * plane[2] + (min(band, geom[4]) - 1) * plane[2] + geom[5]
    width = _ceil_div((stack - 1) * cells + full_wide, span) * span
    zero = x.dtype.type(0)
    for chunk in prange(count):
        buf = np.empty(ch * cstride + span, x.dtype)
        buf[ch * cstride :] = zero
        rows_buf = np.empty(och * width, x.dtype)
        part = np.empty(out_rows * in_rows, np.float64)
        total = totals[chunk]
        last_row = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n0, h0 = (job // bands) * stack, (job % bands) * band
            samples = min(stack, nb - n0)
            rows = min(band, geom[4] - h0)
            wide = (geom[3] - 1) * plane[1] * plane[2] + (rows - 1) * plane[2] + geom[5]
            length = _ceil_div((samples - 1) * cells + wide, span) * span
            _gather_channels(xf, n0, samples, ch, in_plane, h0, geom, phases, columns, plane,
                             stack, zero, buf, cstride, cells, h0 == last_row)  # fmt: skip
            last_row = h0
            for o in range(och):
                row_buf = rows_buf[o * width : (o + 1) * width]
                for i in range(width):
                    row_buf[i] = zero
                for s in range(samples):
                    gbase = ((n0 + s) * och + o) * out_plane
                    _load_rows(gf, gbase, geom, plane, h0, rows, row_buf[s * cells :])
            for o0 in range(0, och, out_rows):
                orows = min(out_rows, och - o0)
                for c0 in range(0, ch, in_rows):
                    crows = min(in_rows, ch - c0)
                    for t in range(taps):
                        dense_weight_tile(
                            buf, c0 * cstride + starts[t], cstride, crows, rows_buf, o0 * width,
                            width, orows, length, part,
                        )  # fmt: skip
                        for j in range(orows):
                            for i in range(crows):
                                total[o0 + j, c0 + i, t] += part[j * in_rows + i]


@njit(parallel=True, cache=True, nogil=True)
def max_values(
    x, geom, phases, tap_phase, tap_q, reach, band, chunks, lowest, out
):  # pragma: no cover - compiled
    """Maximum of each window, padding never winning; a NaN in the window gives NaN.

    ``x`` (N, C, D, H, W), ``out`` (N, C, OD, OH, OW), contiguous; ``lowest`` pads.
    """
    nb, ch = x.shape[0], x.shape[1]
    xf, of = x.reshape(x.size), out.reshape(out.size)
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    out_plane = geom[3] * geom[4] * geom[5]
    bands = _ceil_div(geom[4], band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane, 1)
    fill = x.dtype.type(lowest)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            plane_index = n * ch + c
            base = plane_index * in_plane
            filled = h0 == last
            _gather(xf, base, h0, geom, phases, columns, plane, 1, fill, buf, filled)
            last = h0
            _maximum(buf, starts, wide, acc)
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
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane, 1)
    fill = x.dtype.type(lowest)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        best = np.empty(cells, np.int64)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            base = (n * ch + c) * in_plane
            filled = h0 == last
            _gather(xf, base, h0, geom, phases, columns, plane, 1, fill, buf, filled)
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


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def avg_values(
    x, geom, phases, tap_phase, tap_q, reach, band, chunks, div_d, div_h, div_w, out
):  # pragma: no cover - compiled
    """Sum of each window (taps in row-major order, padding adds zeros) divided by
    ``div_d[a] * div_h[b] * div_w[q]`` (in the input's dtype, exact for window sizes)."""
    nb, ch = x.shape[0], x.shape[1]
    xf = x.reshape(x.size)
    od, oh, ow = geom[3], geom[4], geom[5]
    in_plane = x.shape[2] * x.shape[3] * x.shape[4]
    bands = _ceil_div(oh, band)
    jobs = nb * ch * bands
    per, count = _chunks(jobs, chunks)
    plane = _plane(geom, reach, band)
    columns = _columns(geom, phases, plane)
    cells = plane[0] * plane[1] * plane[2]
    starts = _tap_starts(tap_phase, tap_q, plane, 1)
    zero = x.dtype.type(0)
    for chunk in prange(count):
        buf = np.empty(phases.shape[0] * cells, x.dtype)
        acc = np.empty(cells, x.dtype)
        last = -1
        for job in range(chunk * per, min(jobs, (chunk + 1) * per)):
            n, c, h0, rows, wide = _job(job, ch, bands, geom, plane, band)
            base = (n * ch + c) * in_plane
            filled = h0 == last
            _gather(xf, base, h0, geom, phases, columns, plane, 1, zero, buf, filled)
            last = h0
            _total(buf, starts, wide, acc)
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


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def avg_scatter(grad, geom, kernel, div_d, div_h, div_w, out):  # pragma: no cover - compiled
    """Adjoint of :func:`avg_values`: ``out`` (N, C, D, H, W) set to the sum, over the windows
    holding each input cell, of the window's gradient divided by its divisor (windows in
    order, cells of a window in order, as PyTorch adds them); one (sample, channel) per job.
    ``kernel`` (3,): window size per dimension (no dilation)."""
    nb, ch = grad.shape[0], grad.shape[1]
    d_in, h_in, w_in = geom[0], geom[1], geom[2]
    od, oh, ow = geom[3], geom[4], geom[5]
    sd, sh, sw = geom[6], geom[7], geom[8]
    pd, ph, pw = geom[12], geom[13], geom[14]
    kd, kh, kw = kernel[0], kernel[1], kernel[2]
    for job in prange(nb * ch):
        n = job // ch
        c = job % ch
        target = out[n, c]
        g = grad[n, c]
        for i in range(d_in):
            for j in range(h_in):
                for k in range(w_in):
                    target[i, j, k] = 0
        for a in range(od):
            d0 = a * sd - pd
            d1 = min(d0 + kd, d_in)
            d0 = max(d0, 0)
            for b in range(oh):
                h0 = b * sh - ph
                h1 = min(h0 + kh, h_in)
                h0 = max(h0, 0)
                outer = div_d[a] * div_h[b]
                for q in range(ow):
                    w0 = q * sw - pw
                    w1 = min(w0 + kw, w_in)
                    w0 = max(w0, 0)
                    share = g[a, b, q] / (outer * div_w[q])
                    for i in range(d0, d1):
                        for j in range(h0, h1):
                            for k in range(w0, w1):
                                target[i, j, k] += share
