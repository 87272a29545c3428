"""Dense convolutions by a register-blocked compiled micro-kernel, with no unfolded copy and
no GEMM library.

A job (a sample, a band of output rows, a block of output channels) gathers every input
channel's padded rows of its band into a buffer that stays in the cache, split into stride
phases so that each kernel tap reads one contiguous run of cells (the "wide rows" of
:mod:`convscope.ops._jit_pool`: output positions between the end of one row and the start of
the next are computed and dropped).  The micro-kernel (:func:`convscope.ops._jit_pool.dense_tile`)
keeps 8 output channels by 48 positions (float32, AVX-512) in vector registers and adds, for
every channel and tap, one broadcast weight times three vectors of input: the arithmetic
runs from registers, as in oneDNN's direct convolutions, where unfold + GEMM spends its time
copying the unfolded matrix and packing it for BLAS.  The output is written in place.

Measured against unfold and Winograd on ResNet-18's layers (2 threads, float32, batch 8): see
:data:`convscope.ops.conv.BLOCKED_FROM_EFFICIENCY` for where the heuristic takes it.

>>> import numpy as np
>>> from convscope.ops import blocked
>>> from convscope.ops.conv import conv_general
>>> x, w = np.arange(50.0).reshape(1, 2, 5, 5), np.ones((3, 2, 3, 3))
>>> same = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
>>> ours = conv_general(x, w, **same, algorithm="blocked" if blocked.available() else "unfold")
>>> bool(np.array_equal(ours, conv_general(x, w, **same, algorithm="direct")))
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from . import pool, tiling, unfold_gemm
from .threads import get_num_threads

JOB_BYTES = 512 << 10
"""Target size of one job's gathered input (every channel's phase planes of its band): it is
read once per block of output channels, so it should stay in the core's L2 cache."""

CHANNEL_BLOCK = 16
"""Input channels one pass of the micro-kernel sums over before adding to the partial sums:
the float32 error of blocks of 16 channels' taps, added up, is PyTorch's (oneDNN's)."""

BAND_SPLIT_KEEPS = 0.9
"""Bands are split further for the threads only while this share of the computed positions'
usefulness is kept (short bands of small planes waste most of their vectors)."""

JOBS_PER_THREAD = 2
"""Jobs per thread the bands (then the output-channel blocks) are split into, for balance."""


def available() -> bool:
    """True when the compiled kernels are installed and the CPU has vector fused
    multiply-add (the micro-kernel's ``llvm.fma`` would otherwise become library calls)."""
    kernels = pool.compiled_kernels()
    return kernels is not None and kernels.fused_multiply_add()


def unsupported(geom: tiling.ConvGeometry, groups: int, dtype: Any) -> str | None:
    """Why 'blocked' cannot compute this call, or ``None``."""
    if np.dtype(dtype).name not in ("float16", "float32", "float64"):
        return f"blocked is for floating-point inputs, not {np.dtype(dtype)}"
    if groups != 1:
        return "blocked is for dense layers (groups=1)"
    if max(geom.input_dilation) > 1:
        return "blocked has no zero insertion (transposed layers run it by phases)"
    if not available():
        return "blocked needs numba and a CPU with vector fused multiply-add"
    return None


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one call signature is cut into jobs: the sliding-window tables (their ``band``:
    output rows per job), output channels per job, input channels per pass, positions per
    micro-kernel call; ``efficiency``: the share of computed positions that are outputs;
    ``job_bytes``: one job's buffers (gathered planes and partial sums); ``cached``: a job's
    gathered planes fit :data:`JOB_BYTES` (one row of a long 1-D signal, say, may not)."""

    windows: pool.Windows
    out_block: int
    channel_block: int
    span: int
    efficiency: float
    job_bytes: int
    cached: bool


def plan(
    geom: tiling.ConvGeometry, out_channels: int, itemsize: int, workers: int, budget: int
) -> Plan | None:
    """The jobs of one call, or ``None`` when even a one-row job over every input channel does
    not fit the workspace budget (per thread)."""
    return _plan(geom, out_channels, itemsize, max(1, workers), budget)


@functools.lru_cache(maxsize=1024)
def _plan(
    geom: tiling.ConvGeometry, out_channels: int, itemsize: int, workers: int, budget: int
) -> Plan | None:
    kernels = pool.compiled_kernels()
    rows_per_call, vectors = kernels.dense_block()
    span = vectors * kernels.lanes(itemsize)
    base = pool.Windows.of(geom, itemsize)
    n, channels = geom.input_shape[:2]
    od, oh, ow = (1, 1, 1, *geom.output_size)[-3:]
    reach = [int(r) for r in base.reach]
    phases = len(base.phases)
    pw = ow + reach[2]
    row_bytes = channels * phases * (od + reach[0]) * pw * itemsize  # one band row, all channels

    def wide(rows: int) -> int:
        return (od - 1) * (rows + reach[1]) * pw + (rows - 1) * pw + ow

    def job_bytes(rows: int, block: int) -> int:
        width = -(-wide(rows) // span) * span
        return row_bytes * (rows + reach[1]) + (span + block * width) * itemsize

    def even(rows: int) -> int:  # the same number of bands, evened out
        return -(-oh // -(-oh // rows))

    def share_computed(rows: int) -> float:
        bands = -(-oh // rows)
        computed = sum(-(-wide(min(rows, oh - b * rows)) // span) * span for b in range(bands))
        return od * oh * ow / (computed * od)

    band = oh
    while band > 1 and row_bytes * (band + reach[1]) > JOB_BYTES:
        band = even(-(-band // 2))
    # more jobs for the threads: shorter bands while they waste little, then output channels
    while band > 1 and n * -(-oh // band) < JOBS_PER_THREAD * workers and workers > 1:
        shorter = even(-(-band // 2))
        if share_computed(shorter) < BAND_SPLIT_KEEPS * share_computed(band):
            break
        band = shorter
    out_block = out_channels
    jobs = n * -(-oh // band)
    if workers > 1 and jobs < JOBS_PER_THREAD * workers:
        parts = -(-JOBS_PER_THREAD * workers // jobs)
        out_block = -(-out_channels // parts)
    out_block = -(-out_block // rows_per_call) * rows_per_call
    share = budget // workers
    while job_bytes(band, out_block) > share and band > 1:
        band = -(-band // 2)
    while job_bytes(band, out_block) > share and out_block > rows_per_call:
        out_block = max(rows_per_call, out_block // 2 // rows_per_call * rows_per_call)
    if job_bytes(band, out_block) > share:
        return None
    channel_block = min(channels, CHANNEL_BLOCK)
    efficiency = share_computed(band)
    windows = dataclasses.replace(base, band=int(band), stack=1)
    cached = row_bytes * (band + reach[1]) <= JOB_BYTES
    return Plan(
        windows, int(out_block), int(channel_block), span, efficiency,
        job_bytes(band, out_block), cached,
    )  # fmt: skip


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    """Dense ``conv_general`` into ``out`` (any strides) with the micro-kernel; calls whose
    one-row jobs exceed the workspace budget run unfold + GEMM instead (it tiles further)."""
    reason = unsupported(geom, groups, x.dtype)
    if reason is not None:
        raise ValueError(f"convolution algorithm 'blocked' cannot compute this call: {reason}")
    dtype = tiling.compute_dtype(x.dtype)
    found = plan(geom, w.shape[0], dtype.itemsize, get_num_threads(), budget)
    if found is None:
        unfold_gemm.run(x, w, geom, groups, out, budget)
        return
    src = pool.as_3d(np.ascontiguousarray(x, dtype=dtype))
    kernel = np.ascontiguousarray(w, dtype=dtype).reshape(w.shape[0], w.shape[1], -1)
    direct = out.dtype == dtype
    target = out if direct else np.empty(out.shape, dtype)
    pool.launch(
        "dense",
        src,
        kernel,
        *found.windows.sliding(),
        found.out_block,
        found.channel_block,
        pool.compiled_kernels().dense_block()[0],
        found.span,
        pool.chunks(),
        pool.as_3d(target),
        parallel=math.prod(out.shape) * kernel[0].size >= PARALLEL_WORK,
    )
    if not direct:
        out[...] = target


PARALLEL_WORK = 1 << 22
"""Multiply-adds from which the kernel runs on every thread even when its arrays are small
(a 7x7 plane with 512 channels: the arithmetic, not the memory, is what takes time)."""


def weight_gradient_pays(geom: tiling.ConvGeometry, out_channels: int, itemsize: int) -> bool:
    """Whether the heuristic takes :func:`weight_gradient` for a layer whose forward takes
    'blocked': when each job's runs are at least :data:`WEIGHT_MIN_RUN` positions long (2
    threads, float32, batch 8, blocked / unfold (torch): (64,56x56) 3x3 12.0 / 17.9 ms (8.0),
    (128,28x28) 10.3 / 13.2 (7.2), the 7x7/2 stem 19.8 / 29.6 (10.5), 3x3/2 (64 -> 128,
    56x56) 7.9 / 9.2 (5.0); but (256,14x14) 13.6 / 11.1 and (512,7x7) 40.6 / 10.2, where each
    call's 24 sums are added up after too few positions)."""
    found = _plan(geom, out_channels, itemsize, 1, 1 << 62)
    if found is None:
        return False
    windows = found.windows
    od, _, ow = (1, 1, 1, *geom.output_size)[-3:]
    reach = [int(r) for r in windows.reach]
    run = (od - 1) * (windows.band + reach[1]) * (ow + reach[2]) + windows.band * (ow + reach[2])
    return run >= WEIGHT_MIN_RUN


WEIGHT_MIN_RUN = 768
"""Fewest positions per job (a band's wide rows) for :func:`weight_gradient_pays`."""


def weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: tiling.ConvGeometry, groups: int, budget: int
) -> np.ndarray | None:
    """The weight gradient ``(O, C, *K)`` of a dense layer with the compiled kernel
    (:func:`convscope.ops._jit_pool.dense_weight`), or ``None`` when it does not apply:
    another grouping or dtype, a non-finite input (the positions between rows would multiply
    its Inf by the zero gradient there, NaNs PyTorch does not have) or a workspace budget too
    small for one job and the threads' partial sums (float64, one per thread).

    Each pair of channels and each tap is summed in float64 over the jobs, each job's
    float32 sums over 1/16 of its positions per vector lane."""
    if unsupported(geom, groups, x.dtype) is not None or not tiling.all_finite(x):
        return None
    dtype = tiling.compute_dtype(x.dtype)
    workers = get_num_threads()
    out_channels, channels = grad.shape[1], x.shape[1]
    found = plan(geom, out_channels, dtype.itemsize, workers, budget)
    if found is None:
        return None
    taps = math.prod(geom.kernel_size)
    parts = max(1, workers)
    stack = _weight_stack(geom, found, channels + out_channels, dtype.itemsize, workers)
    cells, width = _weight_rows(geom, found, stack)
    job_bytes = (channels * len(found.windows.phases) * stack * cells + found.span) * dtype.itemsize
    job_bytes += out_channels * width * dtype.itemsize
    if parts * job_bytes + parts * out_channels * channels * taps * 8 > budget:
        return None
    windows = found.windows
    totals = np.zeros((parts, out_channels, channels, taps), np.float64)
    pool.launch(
        "dense_weight",
        pool.as_3d(np.ascontiguousarray(x, dtype=dtype)),
        pool.as_3d(np.ascontiguousarray(grad, dtype=dtype)),
        *windows.sliding(),
        stack,
        *pool.compiled_kernels().dense_weight_block(),
        found.span,
        parts,
        totals,
        parallel=True,
    )
    total = totals[0] if parts == 1 else totals.sum(axis=0)
    return total.reshape(out_channels, channels, *geom.kernel_size).astype(x.dtype)


WEIGHT_JOB_BYTES = 1 << 20
"""Gathered input and gradient rows of one weight-gradient job: samples whose small planes
fit this are stacked into one job, so that each micro-kernel call runs long enough to pay
for adding up its 24 vectors of sums ((8,256,14,14) 3x3: 16.0 ms one sample per job)."""


def _weight_stack(
    geom: tiling.ConvGeometry, found: Plan, rows: int, itemsize: int, workers: int
) -> int:
    """Samples per weight-gradient job: several only when a band is the whole plane, as many
    as fit :data:`WEIGHT_JOB_BYTES` (``rows``: input plus output channels) while every
    thread keeps a job."""
    n = geom.input_shape[0]
    windows = found.windows
    if windows.band < (1, 1, 1, *geom.output_size)[-2]:
        return 1
    cells = _weight_rows(geom, found, 1)[0]
    per_sample = rows * len(windows.phases) * cells * itemsize
    stack = max(1, min(n, WEIGHT_JOB_BYTES // max(1, per_sample)))
    return max(1, min(stack, -(-n // max(1, workers))))


def _weight_rows(geom: tiling.ConvGeometry, found: Plan, stack: int) -> tuple[int, int]:
    """Cells of one phase plane of a weight-gradient job, and the length of its gradient
    rows (``stack`` planes' wide rows, rounded up to whole micro-kernel runs), as
    :func:`convscope.ops._jit_pool.dense_weight` lays them out."""
    od, _, ow = (1, 1, 1, *geom.output_size)[-3:]
    reach = [int(r) for r in found.windows.reach]
    band = found.windows.band
    plane_rows, plane_width = band + reach[1], ow + reach[2]
    cells = (od + reach[0]) * plane_rows * plane_width
    wide = (od - 1) * plane_rows * plane_width + (band - 1) * plane_width + ow
    width = -(-((stack - 1) * cells + wide) // found.span) * found.span
    return cells, width
