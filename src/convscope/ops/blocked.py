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
