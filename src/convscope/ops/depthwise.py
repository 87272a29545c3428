"""Depthwise convolution: one multiply-accumulate pass per kernel tap, no GEMM, no unfold.

For ``groups == in_channels`` every output channel ``c*K + k`` (``K`` the channel multiplier)
reads the single input channel ``c``, so the convolution is ``prod(kernel)`` passes of
``acc += slab[tap window] * w[:, :, tap]``, broadcast over batch and space.  Three things make
these passes fast in NumPy:

* **Long contiguous inner loops.**  Each channel's plane of the (contiguous) slab is indexed
  flat: output position ``p`` of tap offset ``q`` reads flat cell ``sum((p + q) * strides)``,
  so a tap reads *one contiguous run*, starting at the tap's flat offset, into an accumulator
  laid out over the same flat grid ("wide rows": the positions between the end of an output
  row and the start of the next are computed and discarded, a waste of
  ``(extent - 1) / row length``).  When a channel's planes over the tile's samples hold at
  least :data:`LONG_RUN` cells, the run goes on across the samples of the tile and each pass
  is one 1-D ufunc call with a scalar weight (the fastest NumPy loop); smaller planes are
  processed a block of channels at a time, the weights broadcast.
* **Stride by phases.**  With stride ``s`` a tap ``k`` (dilation ``d``) reads the slab phase
  ``(k*d) % s`` at offset ``(k*d) // s``; the used phases are copied into contiguous planes of
  one common shape, after which every tap is a stride-1 pass again.
* **Cache blocking.**  Tiles (batch entries times an output box, planned by
  :func:`tiling.plan_tiles` so one channel fits the budget) are cut into channel blocks
  (padded slab read per block with :func:`tiling.extract_slab`) whose slab, phases,
  accumulator and product buffer fit in :data:`CACHE_BYTES`.  Blocks can be shared out to
  :data:`THREADS` threads, each with its own buffers (the budget counts all of them); see
  there why the default is one.

With numba installed (the ``fast`` extra), floating-point depthwise layers
(``groups == in_channels``) skip all of this: the compiled direct kernel of
:mod:`convscope.ops._jit_pool` runs one parallel job per (sample, channel) plane (small
planes: per channel and block of samples, stacked so each tap is one long run), gathers the
padded rows (split into stride phases) into a cache-sized buffer, adds the taps in the same
order and writes the output in place; its weight gradient is a compiled kernel too.  Grouped
layers with few channels per group keep the compiled tap-by-tap kernel below.

Arithmetic happens in the compute dtype (float16 in float32), so integers stay exact.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(10).reshape(1, 2, 5)
>>> w = np.array([[[1, 0, -1]], [[1, 1, 1]], [[0, 2, 0]], [[1, 0, 0]]])  # multiplier 2
>>> conv_general(x, w, stride=(2,), padding=((1, 1),), dilation=(1,), groups=2,
...              algorithm="depthwise")
array([[[-1, -2,  3],
        [ 1,  6,  7],
        [10, 14, 18],
        [ 0,  6,  8]]])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import jit, pool, tiling

CACHE_BYTES = 384 << 10
"""Target working set (slab, phases, accumulator, product) of one channel block."""

THREADS = 1
"""Threads sharing the channel blocks of one call.  1 by default: on the 2-core machine this
was tuned on, two threads running ufunc passes of ~30k elements were *slower* than one (GIL
hand-offs around every short call); they only paid off (1.4-1.5x) for passes over ~1M."""

LONG_RUN = 1 << 13
"""Fewest cells per channel (samples times plane) for the channel-by-channel passes."""

PARALLEL_WORK = 1 << 24
"""Multiply-adds (output elements times taps) from which the compiled depthwise kernel runs
on every thread even where ``jit.run`` keeps kernels of that size serial (its
``PARALLEL_FROM`` counts elements only): large kernels do that much arithmetic per element
that the second core pays off even while OpenBLAS's worker may be spinning.  2 threads,
medians of 7 interleaved calls: 13x13 on (4, 64, 56, 56) 5.77 -> 3.64 ms (torch 1.93), 7x7
on (8, 96, 56, 56) 6.61 -> 4.42 ms (torch 2.96); ConvNeXt-Tiny, EfficientNet-B0 and
MobileNetV2 at batch 1 unchanged (their layers stay below it)."""

MIN_PARALLEL = 1 << 18
"""Fewest output elements (times taps) for which a second thread is worth starting."""


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    """Depthwise ``conv_general`` (``groups == in_channels``) into ``out``, tile by tile; with
    the compiled kernel, any grouping (meant for layers with few channels per group)."""
    n, c = x.shape[:2]
    if _direct(x, w, geom, groups, out):
        return
    compiled = jit.kernels() is not None
    if not compiled and (groups != c or w.shape[1] != 1 or w.shape[0] % c):
        raise ValueError(
            f"depthwise algorithm needs groups == in_channels (got groups={groups} for "
            f"{c} input channels); use 'unfold' or 'direct'"
        )
    cg, og = c // groups, w.shape[0] // groups
    dtype = tiling.compute_dtype(x.dtype)
    size = tiling.itemsize(dtype)
    mult = -(-w.shape[0] // c)  # output channels per input channel (rounded up), for sizes
    plan = _TapPlan.of(geom)
    taps = len(plan.taps)
    channel_cost = plan.channel_cost(size, 2 * mult)
    nb, box = tiling.plan_tiles(n, geom.output_size, channel_cost, budget)
    per = channel_cost(nb, box)
    cb = max(1, min(c, CACHE_BYTES // per, budget // per))
    if compiled:  # the kernel blocks for the cache itself; blocks hold whole groups
        cb = max(cg, min(c, budget // per) // cg * cg)
    elif nb * tiling.prod(plan.plane(box)) >= LONG_RUN:
        cb = 1  # long runs already: one channel at a time, scalar weights
    units = [
        (tile, c0, min(c0 + cb, c))
        for tile in tiling.iter_tiles(n, geom.output_size, nb, box)
        for c0 in range(0, c, cb)
    ]
    work = out.size * taps
    workers = max(1, min(THREADS, len(units), budget // (cb * per)))
    if work < MIN_PARALLEL or compiled:
        workers = 1  # (the compiled kernel runs its own threads)
    if compiled:
        kernel = w.astype(dtype, copy=False).reshape(groups, og, cg, taps)
    else:
        kernel = w.astype(dtype, copy=False).reshape(c, mult, taps, 1)
    block = _compiled_block if compiled else _block

    def worker(mine: Sequence[tuple[tiling.Tile, int, int]]) -> None:
        buffers = [tiling.Scratch(dtype) for _ in range(4)]
        for tile, c0, c1 in mine:
            block(x, kernel, plan, tile, c0, c1, out, dtype, buffers)

    if workers == 1:
        worker(units)
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(worker, units[i::workers]) for i in range(workers)]:
            future.result()


def _direct(
    x: np.ndarray, w: np.ndarray, geom: tiling.ConvGeometry, groups: int, out: np.ndarray
) -> bool:
    """A depthwise layer (``groups == in_channels``, floating point, no zero insertion) with
    the compiled direct kernel (:func:`convscope.ops._jit_pool.depthwise`): one job per
    (sample, channel) plane and band of rows, or per channel of a few samples whose small
    planes it stacks (:attr:`convscope.ops.pool.Windows.stack`), its padded rows gathered in
    cache, the output written in place.  2 threads, float32, (8, 960, 7, 7) 3x3: forward
    1.61 -> 0.91 ms, input gradient 1.64 -> 0.90, weight gradient 1.73 -> 1.18 (torch 0.53,
    0.69, 0.88), with the gather's per-plane divisions moved out (``_columns``).  Returns
    ``False`` (nothing done) for other calls."""
    c = x.shape[1]
    if (
        groups != c
        or w.shape[1] != 1
        or x.dtype.name not in ("float16", "float32", "float64")
        or max(geom.input_dilation) > 1
        or pool.compiled_kernels() is None
    ):
        return False
    dtype = tiling.compute_dtype(x.dtype)
    mult = w.shape[0] // c
    src = pool.as_3d(np.ascontiguousarray(x, dtype=dtype))
    kernel = np.ascontiguousarray(w, dtype=dtype).reshape(c, mult, -1)
    direct = out.dtype == dtype  # any strides: the kernel writes a stride phase in place
    target = out if direct else np.empty(out.shape, dtype)
    tables = pool.Windows.of(geom, dtype.itemsize)
    split = pool.as_3d(target)
    split = as_strided(  # (N, C*M, ...) as (N, C, M, 1, 1, ...): a view at any strides
        split,
        (split.shape[0], c, mult, 1, 1, *split.shape[2:]),
        (split.strides[0], mult * split.strides[1], split.strides[1], 0, 0, *split.strides[2:]),
    )
    _launch(src, kernel, geom, tables, split)
    if not direct:
        out[...] = target
    return True


def _launch(
    src: np.ndarray,
    kernel: np.ndarray,
    geom: tiling.ConvGeometry,
    tables: pool.Windows,
    out: np.ndarray,
) -> None:
    """The compiled depthwise kernel on ``src`` ``(N, C, D, H, W)`` with ``kernel``
    ``(C, M, T)`` into ``out`` ``(N, C, MD, MH, MW, OD, OH, OW)`` (see
    :func:`convscope.ops._jit_pool.depthwise`), register-blocked where that applies."""
    rows_per_call = lanes = 0  # the plain kernel
    if register_blocked(geom):
        kernels = pool.compiled_kernels()
        rows_per_call, lanes = kernels.block_rows(), kernels.lanes(src.dtype.itemsize)
    pool.launch(
        "depthwise",
        src,
        kernel,
        *tables.sliding(),
        1 if rows_per_call else tables.stack,
        pool.chunks(),
        rows_per_call,
        lanes,
        out,
        parallel_from=_parallel_from(len(tables.tap_q)),
    )


def phases_at_once(
    x: np.ndarray,
    w: np.ndarray,
    groups: int,
    per_dim: Sequence[Sequence[tuple[int, tuple | None]]],
    out: np.ndarray,
) -> bool:
    """All stride phases of a zero-inserted depthwise correlation (a strided depthwise
    layer's input gradient) in one launch of the compiled kernel, or ``False`` (nothing done)
    when it does not apply.

    ``per_dim`` lists, per spatial dimension, each phase's ``(r, (tap slice, dilation,
    (pad before, pad after)))`` as ``conv._phases_of_dim`` gives them.  The phases' sub-kernels
    are laid into one common window (zeros where a phase has no tap) and become the channel's
    ``prod(steps)`` outputs, each written straight into its strided view of ``out``: one pass
    over the gradient, every plane of ``out`` written while it is cached, where one call per
    phase reads the gradient once per phase and writes a strided part of every plane each
    time.  Applies to multiplier-1 depthwise layers (floating point, compiled kernels) whose
    output lengths are multiples of their steps, whose phases all have taps and whose input
    is finite (a zero tap times an Inf would be a NaN the phases never compute).  Input
    gradients of 3x3 stride-2 layers, 2 threads, float32, one launch against four: (8, 96,
    112, 112) 8.7 -> 6.5 ms, (8, 144, 56, 56) 4.2 -> 3.0, (8, 576, 14, 14) 2.1 -> 1.6 (torch
    5.8, 2.0, 0.75)."""
    n, c = x.shape[:2]
    steps = [len(phases) for phases in per_dim]
    dtype = tiling.compute_dtype(x.dtype)
    if (
        groups != c
        or w.shape[:2] != (c, 1)
        or x.dtype.name not in ("float16", "float32", "float64")
        or out.dtype != dtype
        or pool.compiled_kernels() is None
        or any(spec is None for phases in per_dim for _, spec in phases)
        or any(length % step for length, step in zip(out.shape[2:], steps, strict=True))
        or len(steps) > 3
        or not tiling.all_finite(x)  # the zero taps would turn an Inf into NaNs
    ):
        return False
    # per dim: the common window's first padded cell and each phase's offset in it
    before = [max(spec[2][0] for _, spec in phases) for phases in per_dim]
    if min(before) < 0:
        return False
    offsets = [
        [lo - spec[2][0] + spec[1] * np.arange(len(range(*spec[0].indices(k)))) for _, spec in ph]
        for ph, lo, k in zip(per_dim, before, w.shape[2:], strict=True)
    ]
    window = [max(int(o[-1]) for o in dim) + 1 for dim in offsets]
    common = np.zeros((c, *steps, *window), dtype)
    for combo in itertools.product(*(range(step) for step in steps)):
        taps = tuple(per_dim[i][r][1][0] for i, r in enumerate(combo))
        cells = np.ix_(*(offsets[i][r] for i, r in enumerate(combo)))
        common[(slice(None), *combo, *cells)] = w[(slice(None), 0, *taps)]
    lengths = [length // step for length, step in zip(out.shape[2:], steps, strict=True)]
    geom = tiling.ConvGeometry(
        input_shape=x.shape,
        kernel_size=tuple(window),
        stride=(1,) * len(steps),
        pads=tuple((lo, 0) for lo in before),
        dilation=(1,) * len(steps),
        input_dilation=(1,) * len(steps),
        output_size=tuple(lengths),
    )
    lead = 3 - len(steps)
    split = as_strided(  # out[n, c, r..., q...] = the cell r + step * q of each dimension
        out,
        (n, c, *(1,) * lead, *steps, *(1,) * lead, *lengths),
        (
            *out.strides[:2],
            *(0,) * lead,
            *out.strides[2:],
            *(0,) * lead,
            *(a * step for a, step in zip(out.strides[2:], steps, strict=True)),
        ),
    )
    src = pool.as_3d(np.ascontiguousarray(x, dtype=dtype))
    tables = pool.Windows.of(geom, dtype.itemsize)
    _launch(src, common.reshape(c, math.prod(steps), -1), geom, tables, split)
    return True


BLOCKED_FROM_ROWS = 5
"""Kernel rows from which a stride-1, undilated 2-D (or 3-D with one frame) depthwise layer
takes the register-blocked kernel (:func:`convscope.ops._jit_pool.depthwise_rows`).  2
threads, float32, medians of 9 interleaved calls: 13x13 on (4, 64, 56, 56) 4.06 -> 2.39 ms
(torch 2.41), 7x7 on (8, 96, 56, 56) 4.14 -> 3.01 ms (torch 2.73), 5x5 on (1, 672, 14, 14)
0.76 -> 0.30 ms (torch 0.33); 3x3 on (8, 144, 56, 56) 3.21 against 3.34 ms, no gain."""


def register_blocked(geom: tiling.ConvGeometry) -> bool:
    """True for a call the register-blocked kernel takes: stride 1 and dilation 1, at least
    two spatial dimensions, a single output frame and kernel frame before the last two, at
    least :data:`BLOCKED_FROM_ROWS` kernel rows, and a machine with vector fused
    multiply-add."""
    k = geom.kernel_size
    if not (
        len(k) >= 2
        and max(geom.stride) == 1
        and max(geom.dilation) == 1
        and all(size == 1 for size in (*k[:-2], *geom.output_size[:-2]))
        and k[-2] >= BLOCKED_FROM_ROWS
    ):
        return False
    kernels = pool.compiled_kernels()
    return kernels is not None and kernels.fused_multiply_add()


def _parallel_from(taps: int) -> int:
    """``jit.run``'s ``parallel_from`` for a depthwise call of ``taps`` taps (see
    :data:`PARALLEL_WORK`)."""
    return min(jit.PARALLEL_FROM, max(jit.SERIAL_BELOW, PARALLEL_WORK // max(taps, 1)))


def _direct_weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: tiling.ConvGeometry, groups: int
) -> np.ndarray | None:
    """The weight gradient of a depthwise layer with the compiled direct kernel (one job per
    input channel, partial sums per plane added in float64), or ``None`` for other calls."""
    c = x.shape[1]
    if (
        groups != c
        or grad.shape[1] % c
        or x.dtype.name not in ("float16", "float32", "float64")
        or max(geom.input_dilation) > 1
        or pool.compiled_kernels() is None
    ):
        return None
    dtype = tiling.compute_dtype(x.dtype)
    mult = grad.shape[1] // c
    tables = pool.Windows.of(geom, dtype.itemsize)
    total = np.zeros((c, mult, len(tables.tap_q)), np.float64)
    pool.launch(
        "depthwise_weight",
        pool.as_3d(np.ascontiguousarray(x, dtype=dtype)),
        pool.as_3d(np.ascontiguousarray(grad, dtype=dtype)),
        *tables.sliding(),
        tables.stack,
        total,
    )
    return total.reshape(grad.shape[1], 1, *geom.kernel_size).astype(x.dtype)


def weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: tiling.ConvGeometry, groups: int, budget: int
) -> np.ndarray:
    """Weight gradient ``(O, C/groups, *K)`` of a stride-phase tap-by-tap convolution with the
    compiled kernel: per tile and block of groups, the slab's phase planes are correlated with
    the output gradient laid out in the same wide rows."""
    n, c = x.shape[:2]
    o = grad.shape[1]
    direct = _direct_weight_gradient(x, grad, geom, groups)
    if direct is not None:
        return direct
    cg, og = c // groups, o // groups
    dtype = tiling.compute_dtype(x.dtype)
    size = tiling.itemsize(dtype)
    plan = _TapPlan.of(geom)
    channel_cost = plan.channel_cost(size, -(-o // c))
    nb, box = tiling.plan_tiles(n, geom.output_size, channel_cost, budget)
    cb = max(cg, min(c, budget // channel_cost(nb, box)) // cg * cg)
    total = np.zeros((groups, og, cg, len(plan.taps)), dtype)
    tap_phase = plan.tap_phase()
    buffers = [tiling.Scratch(dtype) for _ in range(3)]
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        for c0 in range(0, c, cb):
            c1 = min(c0 + cb, c)
            planes, plane, wide, flat = _planes(
                x, plan, tile, c0, c1, dtype, buffers, compiled=True
            )
            count = planes.shape[1]
            g0, g1 = c0 // cg, c1 // cg
            rows = buffers[2].take((count, (g1 - g0) * og, tile.size[0] * flat[0]))
            rows.fill(0)
            cells = rows.reshape(count, (g1 - g0) * og, tile.size[0], *plane[1:])
            cells[(slice(None), slice(None), *(slice(0, b) for b in tile.size))] = grad[
                (tile.batch, slice(g0 * og, g1 * og), *tile.out_index[2:])
            ]
            jit.call(
                "grouped_taps_weight",
                planes.reshape(len(plan.phases), count, c1 - c0, -1),
                tap_phase,
                plan.tap_offsets(flat),
                rows,
                wide,
                total[g0:g1],
            )
    return total.reshape(o, cg, *geom.kernel_size).astype(x.dtype, copy=False)


@dataclass(frozen=True)
class _TapPlan:
    """How a call's kernel taps read the slab: per tap (row-major order) its stride phase and
    its offset inside that phase; the distinct phases; the reach of the offsets per dim."""

    geom: tiling.ConvGeometry
    taps: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    phases: tuple[tuple[int, ...], ...]
    reach: tuple[int, ...]

    @classmethod
    def of(cls, geom: tiling.ConvGeometry) -> _TapPlan:
        per_dim = [
            [((k * d) % s, (k * d) // s) for k in range(size)]
            for size, d, s in zip(geom.kernel_size, geom.dilation, geom.stride, strict=True)
        ]
        taps = tuple(
            (tuple(r for r, _ in combo), tuple(q for _, q in combo))
            for combo in itertools.product(*per_dim)
        )
        reach = tuple(max(q[d] for _, q in taps) for d in range(len(geom.kernel_size)))
        return cls(geom, taps, tuple(sorted({phase for phase, _ in taps})), reach)

    def plane(self, box: Sequence[int]) -> list[int]:
        """Shape of one phase plane for an output ``box``."""
        return [b + r for b, r in zip(box, self.reach, strict=True)]

    def channel_cost(self, size: int, outputs: int) -> tiling.CostFn:
        """Bytes of one input channel's buffers (slab, phases, ``outputs`` wide-row buffers
        per output channel of it) for ``nb`` samples and an output box."""

        def cost(nb: int, box: Sequence[int]) -> int:
            plane = tiling.prod(self.plane(box))
            cells = tiling.prod(tiling.slab_shape(self.geom, 1, box)[2:])
            return size * nb * (cells + len(self.phases) * plane + outputs * plane)

        return cost

    def tap_phase(self) -> np.ndarray:
        """Index into ``phases`` of every tap."""
        return np.array([self.phases.index(phase) for phase, _ in self.taps], dtype=np.int64)

    def tap_offsets(self, flat: Sequence[int]) -> np.ndarray:
        """Flat offset of every tap inside its phase plane (plane strides ``flat``)."""
        return np.array(
            [sum(q * f for q, f in zip(offset, flat, strict=True)) for _, offset in self.taps],
            dtype=np.int64,
        )


def _wide(box: Sequence[int], plane: Sequence[int]) -> int:
    """Length of the flat ("wide row") accumulator of ``box`` over planes of shape ``plane``."""
    return sum((b - 1) * math.prod(plane[d + 1 :]) for d, b in enumerate(box)) + 1


def _block(
    x: np.ndarray,
    kernel: np.ndarray,
    plan: _TapPlan,
    tile: tiling.Tile,
    c0: int,
    c1: int,
    out: np.ndarray,
    dtype: np.dtype,
    buffers: Sequence[tiling.Scratch],
) -> None:
    """Channels ``[c0, c1)`` of one tile: phases, one pass per tap, copy into ``out``."""
    _, _, acc_buf, tmp_buf = buffers
    taps, phases = plan.taps, plan.phases
    planes, plane, wide, flat = _planes(x, plan, tile, c0, c1, dtype, buffers)
    nb, cb = planes.shape[1:3]
    mult = kernel.shape[1]
    box = tile.size
    plane_size = math.prod(plane)
    if cb == 1 and nb * plane_size >= LONG_RUN:
        acc = acc_buf.take((mult, nb, plane_size))
        _per_channel(planes[:, :, 0], kernel[c0], taps, phases, flat, wide, acc, tmp_buf)
        result = acc.reshape(mult, nb, *plane).swapaxes(0, 1)
    else:
        acc = acc_buf.take((nb, cb, mult, box[0] * flat[0]))  # room for whole wide rows
        _broadcast(planes, kernel[c0:c1], taps, phases, flat, wide, acc, tmp_buf)
        result = acc.reshape(nb, cb * mult, box[0], *plane[1:])
    result = result[(slice(None), slice(None), *(slice(0, b) for b in box))]
    out[(tile.batch, slice(c0 * mult, c1 * mult), *tile.out_index[2:])] = result


def _planes(
    x: np.ndarray,
    plan: _TapPlan,
    tile: tiling.Tile,
    c0: int,
    c1: int,
    dtype: np.dtype,
    buffers: Sequence[tiling.Scratch],
    compiled: bool = False,
) -> tuple[np.ndarray, list[int], int, list[int]]:
    """Channels ``[c0, c1)`` of the tile's slab as contiguous stride-1 phase planes
    ``(phases, nb, cb, *plane)``, with the plane shape, the wide-row length and the flat
    strides of the plane (``compiled``: the phases are gathered by the compiled kernel)."""
    slab_buf, phase_buf = buffers[:2]
    geom, phases = plan.geom, plan.phases
    slab = tiling.extract_slab(x[:, c0:c1], geom, tile, dtype, slab_buf)
    nb, cb = slab.shape[:2]
    box = tile.size
    plane = plan.plane(box)
    if phases == ((0,) * len(box),) and slab.flags.c_contiguous and list(slab.shape[2:]) == plane:
        planes = slab[None]
    elif compiled:
        planes = phase_buf.take((len(phases), nb, cb, *plane))
        jit.call(
            "gather_planes",
            np.ascontiguousarray(slab).reshape(nb, cb, -1),
            _phase_index(slab.shape[2:], phases, geom.stride, plane),
            planes.reshape(len(phases), nb, cb, -1),
        )
    else:
        planes = phase_buf.take((len(phases), nb, cb, *plane))
        for i, phase in enumerate(phases):
            _copy_phase(slab, phase, geom.stride, planes[i])
    flat = [math.prod(plane[d + 1 :]) for d in range(len(box))]
    return planes, plane, _wide(box, plane), flat


def _compiled_block(
    x: np.ndarray,
    kernel: np.ndarray,
    plan: _TapPlan,
    tile: tiling.Tile,
    c0: int,
    c1: int,
    out: np.ndarray,
    dtype: np.dtype,
    buffers: Sequence[tiling.Scratch],
) -> None:
    """Channels ``[c0, c1)`` (whole groups) of one tile with the compiled kernel;
    ``kernel`` is ``(groups, O/groups, C/groups, taps)``."""
    planes, plane, wide, flat = _planes(x, plan, tile, c0, c1, dtype, buffers, compiled=True)
    nb, cb = planes.shape[1:3]
    og, cg = kernel.shape[1:3]
    g0, g1 = c0 // cg, c1 // cg
    acc = buffers[2].take((nb, (g1 - g0) * og, tile.size[0] * flat[0]))
    jit.call(
        "grouped_taps",
        planes.reshape(len(plan.phases), nb, cb, -1),
        plan.tap_phase(),
        plan.tap_offsets(flat),
        np.ascontiguousarray(kernel[g0:g1]),
        acc,
        wide,
    )
    result = acc.reshape(nb, (g1 - g0) * og, tile.size[0], *plane[1:])
    result = result[(slice(None), slice(None), *(slice(0, b) for b in tile.size))]
    out[(tile.batch, slice(g0 * og, g1 * og), *tile.out_index[2:])] = result


def _per_channel(
    planes: np.ndarray,
    kernel: np.ndarray,
    taps: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
    phases: Sequence[tuple[int, ...]],
    flat: Sequence[int],
    wide: int,
    acc: np.ndarray,
    tmp_buf: tiling.Scratch,
) -> None:
    """One channel: each tap one contiguous run over all samples, with a scalar weight.

    ``planes`` is ``(phases, nb, *plane)``, ``kernel`` ``(mult, taps, 1)``, ``acc``
    ``(mult, nb, plane size)``.  A tap's run starts at its offset in the first sample's plane
    and spans ``(nb - 1) * plane + wide`` cells: the wide rows of every sample (positions
    between two samples are junk; the run never reads past the last plane).
    """
    nphase, nb = planes.shape[:2]
    size = acc.shape[2]
    length = (nb - 1) * size + wide
    cells = planes.reshape(nphase, nb * size)
    tmp = tmp_buf.take((length,))
    for k in range(acc.shape[0]):
        target = acc[k].reshape(-1)[:length]
        for t, (phase, offset) in enumerate(taps):
            start = sum(q * f for q, f in zip(offset, flat, strict=True))
            window = cells[phases.index(phase), start : start + length]
            weight = kernel[k, t, 0]
            if t == 0:
                np.multiply(window, weight, out=target)
            else:
                np.multiply(window, weight, out=tmp)
                np.add(target, tmp, out=target)


def _broadcast(
    planes: np.ndarray,
    kernel: np.ndarray,
    taps: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
    phases: Sequence[tuple[int, ...]],
    flat: Sequence[int],
    wide: int,
    acc: np.ndarray,
    tmp_buf: tiling.Scratch,
) -> None:
    """All channels and samples of the block at once (for small planes), weights broadcast."""
    nphase, nb, cb = planes.shape[:3]
    cells = planes.reshape(nphase, nb, cb, 1, -1)
    acc, tmp = acc[..., :wide], tmp_buf.take((nb, cb, acc.shape[2], wide))
    for t, (phase, offset) in enumerate(taps):
        start = sum(q * f for q, f in zip(offset, flat, strict=True))
        window = cells[phases.index(phase), ..., start : start + wide]  # (nb, cb, 1, wide)
        weight = kernel[:, :, t]  # (cb, mult, 1)
        if t == 0:
            np.multiply(window, weight, out=acc)
        else:
            np.multiply(window, weight, out=tmp)
            np.add(acc, tmp, out=acc)


def _phase_index(
    cells: Sequence[int],
    phases: Sequence[tuple[int, ...]],
    stride: Sequence[int],
    plane: Sequence[int],
) -> np.ndarray:
    """For each phase, the flat slab cell behind every plane cell.  Cells past the slab
    point at cell 0: only wide-row positions that are discarded read them."""
    flat = np.arange(math.prod(cells), dtype=np.uint64).reshape(cells)
    index = np.zeros((len(phases), *plane), dtype=np.uint64)
    for i, phase in enumerate(phases):
        part = flat[tuple(slice(r, None, s) for r, s in zip(phase, stride, strict=True))]
        have = tuple(slice(0, min(a, b)) for a, b in zip(part.shape, plane, strict=True))
        index[(i, *have)] = part[have]
    return index.reshape(len(phases), -1)


def _copy_phase(
    slab: np.ndarray, phase: Sequence[int], stride: Sequence[int], dest: np.ndarray
) -> None:
    """``slab[..., r::s]`` into ``dest`` (cut to its shape); cells past the slab become zeros."""
    index = tuple(slice(r, None, s) for r, s in zip(phase, stride, strict=True))
    source = slab[(slice(None), slice(None), *index)]
    have = [min(a, b) for a, b in zip(source.shape[2:], dest.shape[2:], strict=True)]
    dest[(slice(None), slice(None), *(slice(0, h) for h in have))] = source[
        (slice(None), slice(None), *(slice(0, h) for h in have))
    ]
    for d, h in enumerate(have):  # zero the tails (read only by discarded wide positions)
        if h < dest.shape[2 + d]:
            dest[(slice(None), slice(None), *(slice(None),) * d, slice(h, None))] = 0
