"""Unfold + GEMM: copy each tile's receptive windows into a matrix (im2col) and let BLAS
multiply the kernel matrix by it.

The layout minimises copies: for a tile of ``nb`` samples and ``P`` output positions the
unfolded matrix is ``(nb, groups, C/groups * prod(K), P)`` (sample-major, in the order the
slab is read), and the product of each sample, ``(groups, O/groups, P)``, is written by BLAS
straight into the output when the tile spans whole output planes (the usual case) instead
of through a buffer.  A 1x1 convolution with stride 1 and no padding needs no unfolding at
all: it is one GEMM per sample on the input as it is.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(8.0).reshape(1, 2, 4)
>>> conv_general(x, np.ones((3, 2, 1)), stride=(1,), padding=((0, 0),), dilation=(1,),
...              algorithm="unfold")
array([[[ 4.,  6.,  8., 10.],
        [ 4.,  6.,  8., 10.],
        [ 4.,  6.,  8., 10.]]])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from . import algorithms, threads, tiling
from .matmul import matmul

PER_SAMPLE_POSITIONS = 1024
"""Output positions per sample from which each sample gets its own GEMM, written straight
into the output; below it one GEMM covers all samples of a tile (through a buffer)."""

SHARED_FROM = 1 << 23
"""Multiply-adds from which a convolution's tiles may be shared out over the threads (each
unfolding and multiplying its own tiles with BLAS on one core); smaller ones run on the
calling thread with BLAS's own threads."""

SHARED_PLANE = 1 << 14
"""Output positions per sample from which tiles are shared out: each thread's GEMMs then
have many columns.  On smaller planes sharing lost to BLAS's own threads (quiet 2-core
machine, medians of whole networks: ResNet-18 at batch 1 28 -> 52 ms, its layer4 GEMMs of 28
columns each packing all 512 x 4608 weights); on bigger planes the two were within the
run-to-run spread (r3d_18 602 -> 566 ms, a U-Net at 256x256 batch 1 130 -> 117 ms in one run
and 185 -> 198 ms in another)."""

FORWARD_TILE_BYTES = 24 << 20
"""Workspace the forward's tiles aim at when the budget allows more (but at least one slab of
whole trailing output rows, so BLAS still writes into the output): a column matrix the GEMM
reads back while it is cached.  One thread, r3d_18's (1, 64, 16, 56, 56) 3x3x3 layer: 204 ms
with whole-sample tiles (a 347 MiB column matrix), 120-130 ms with 8-32 MiB ones (torch 71)."""


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    dtype = tiling.compute_dtype(x.dtype)
    n, c = x.shape[:2]
    o, k = w.shape[0], w.shape[2:]
    cg, og = c // groups, o // groups
    kernel = w.astype(dtype, copy=False).reshape(groups, og, cg * tiling.prod(k))
    if _pointwise(x, geom, dtype, out):
        planes = x.reshape(n, groups, cg, -1)
        matmul(kernel, planes, out=out.reshape(n, groups, og, -1))
        return
    workers = threads.get_num_threads()
    plane = tiling.prod(geom.output_size)
    work = n * plane * kernel.size
    # shared out, BLAS's own threads idle, whenever the call feeds a gradient (see
    # matmul.GRADIENT_SHARED_FROM)
    big = work >= SHARED_FROM and (plane >= SHARED_PLANE or algorithms.precise())
    framed = _frames_pay(geom, groups) and out.dtype == dtype and out.flags.c_contiguous
    if workers > 1 and big and threads.blas_is_adjustable():
        # each thread unfolds its own tiles and multiplies them on one core: no hand-over
        # between copying and BLAS's threads, and no BLAS thread spinning between GEMMs
        tiles = _shared_tiles(geom, dtype, o, budget, workers, framed)
        threads.share_out(lambda share: _run_tiles(x, kernel, geom, share, out, framed), tiles)
        return
    tiles = _tiles(geom, dtype, o, budget, threads.concurrent_shares(), framed)[0]
    _run_tiles(x, kernel, geom, tiles, out, framed)


def _run_tiles(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: tiling.ConvGeometry,
    tiles: Sequence[tiling.Tile],
    out: np.ndarray,
    framed: bool = False,
) -> None:
    """Unfold and multiply ``tiles`` one after another (``kernel``: ``(groups, O/groups,
    C/groups * prod(K))`` in the compute dtype); with ``framed`` (see :func:`_frames_pay`:
    one group, ``out`` C-contiguous in the compute dtype) tiles of whole output frames
    unfold each input frame once (:func:`_run_frames`)."""
    dtype = kernel.dtype
    groups, og = kernel.shape[:2]
    o = groups * og
    slabs, columns, products = (tiling.Scratch(dtype) for _ in range(3))
    by_frames = _framed_kernel(kernel, geom) if framed else None
    for tile in tiles:
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        count = slab.shape[0]
        if by_frames is not None and tuple(tile.size[1:]) == tuple(geom.output_size[1:]):
            _run_frames(slab, by_frames, geom, tile, columns, out)
            continue
        target = _gemm_view(out, tile, geom, groups) if out.dtype == dtype else None
        per_sample = tiling.prod(tile.size) >= PER_SAMPLE_POSITIONS or count == 1
        if per_sample and target is not None:
            cols = unfold(slab, geom, tile.size, groups, columns)
            np.matmul(kernel, cols, out=target)
            continue
        if per_sample:
            cols = unfold(slab, geom, tile.size, groups, columns)
            product = products.take((count, groups, og, cols.shape[-1]))
            np.matmul(kernel, cols, out=product)
            product = product.reshape(count, o, *tile.size)
        else:
            cols = unfold(slab, geom, tile.size, groups, columns, samples_inner=True)
            product = products.take((groups, og, cols.shape[-1]))
            np.matmul(kernel, cols, out=product)
            product = product.reshape(o, count, *tile.size).swapaxes(0, 1)
        threads.parallel_copy(out[tile.out_index], product, axis=1)


FRAME_POSITIONS = 1024
"""Output positions per frame (the trailing dimensions of a 3-D or larger convolution) from
which :func:`_run_frames` unfolds each input frame once: its GEMMs then have that many
columns."""


def _frames_pay(geom: tiling.ConvGeometry, groups: int) -> bool:
    """True when unfolding each input *frame* (a position of the first spatial dimension)
    once saves copies: one group, a kernel spanning several frames with stride below it and
    no dilation there, no zero insertion, and big enough frames (:data:`FRAME_POSITIONS`).
    Plain unfolding copies each frame once per output frame that reads it (r3d_18's stem,
    a (3, 7, 7) kernel: three times)."""
    return (
        groups == 1
        and len(geom.kernel_size) >= 2
        and geom.kernel_size[0] > geom.stride[0]
        and geom.dilation[0] == 1
        and max(geom.input_dilation) == 1
        and tiling.prod(geom.output_size[1:]) >= FRAME_POSITIONS
    )


def _framed_kernel(kernel: np.ndarray, geom: tiling.ConvGeometry) -> np.ndarray:
    """``kernel`` ``(1, O, C * prod(K))`` with its columns in ``(k0, C, *K[1:])`` order: the
    order of consecutive frames' unfolded rows."""
    o = kernel.shape[1]
    k = geom.kernel_size
    c = kernel.shape[2] // tiling.prod(k)
    shaped = kernel.reshape(o, c, k[0], tiling.prod(k[1:]))
    return np.ascontiguousarray(shaped.transpose(0, 2, 1, 3)).reshape(o, -1)


def _run_frames(
    slab: np.ndarray,
    kernel: np.ndarray,
    geom: tiling.ConvGeometry,
    tile: tiling.Tile,
    scratch: tiling.Scratch,
    out: np.ndarray,
) -> None:
    """One tile of whole output frames: every frame of ``slab`` unfolded once over the
    trailing dimensions into ``(nb, frames, C * prod(K[1:]), positions)``, then for each
    sample and output frame one GEMM of ``kernel`` (columns in ``(k0, C, *K[1:])`` order)
    with the rows of the ``k0`` consecutive frames it reads, one contiguous block, written
    straight into the output.  The same products as plain unfolding, summed in another
    order."""
    nb, c, frames = slab.shape[:3]
    k, box = geom.kernel_size, tile.size
    sn, sc, sf, *sx = slab.strides
    windows = tiling.strided_view(
        slab,
        (nb, frames, c, *k[1:], *box[1:]),
        (
            sn,
            sf,
            sc,
            *(st * d for st, d in zip(sx, geom.dilation[1:], strict=True)),
            *(st * s for st, s in zip(sx, geom.stride[1:], strict=True)),
        ),
        writeable=False,
    )
    rows, positions = c * tiling.prod(k[1:]), tiling.prod(box[1:])
    cols = scratch.take((nb, frames, c, *k[1:], *box[1:]))
    threads.parallel_copy(cols, windows, axis=0 if nb > 1 else 1)
    cols = cols.reshape(nb, frames, rows, positions)
    target = out[tile.out_index].reshape(nb, out.shape[1], box[0], positions)
    step = geom.stride[0]
    for n in range(nb):
        for t in range(box[0]):
            block = cols[n, t * step : t * step + k[0]].reshape(k[0] * rows, positions)
            np.matmul(kernel, block, out=target[n, :, t])


@functools.lru_cache(maxsize=1024)
def _shared_tiles(
    geom: tiling.ConvGeometry,
    dtype: np.dtype,
    out_channels: int,
    budget: int,
    workers: int,
    framed: bool = False,
) -> tuple[tiling.Tile, ...]:
    """Tiles for ``workers`` threads: each thread's columns within its share of the budget,
    and at least one tile per thread (see :func:`tiling.thread_tiles`)."""
    tiles, box = _tiles(geom, dtype, out_channels, max(1, budget // workers), 1, framed)
    return tiling.thread_tiles(tiles, box, geom, workers)


@functools.lru_cache(maxsize=1024)
def _tiles(
    geom: tiling.ConvGeometry,
    dtype: np.dtype,
    out_channels: int,
    budget: int,
    sharers: int = 1,
    framed: bool = False,
) -> tuple[tuple[tiling.Tile, ...], tuple[int, ...]]:
    """The tiles of one call signature (and their output box), planned once; ``sharers``
    calls running side by side (batch-parallel shares) divide the tile size among them;
    ``framed``: tiles of whole output frames will unfold each input frame once."""
    size = tiling.itemsize(dtype)
    n, c = geom.input_shape[:2]
    taps = tiling.prod(geom.kernel_size)
    whole_frames = tuple(geom.output_size[1:])

    def cost(nb: int, box: Sequence[int]) -> int:
        positions = nb * tiling.prod(box)
        slab = tiling.prod(tiling.slab_shape(geom, nb, box))
        if framed and tuple(box[1:]) == whole_frames:  # _run_frames' smaller columns
            frames = (box[0] - 1) * geom.stride[0] + geom.kernel_size[0]
            columns = nb * frames * tiling.prod(box[1:]) * c * tiling.prod(geom.kernel_size[1:])
            return size * (slab + columns + positions * out_channels)
        return size * (slab + positions * (c * taps + out_channels))

    rows = (1, *geom.output_size[1:])
    aim = min(budget, max(FORWARD_TILE_BYTES // sharers, cost(1, rows)))
    nb, box = tiling.plan_tiles(n, geom.output_size, cost, aim)
    if tiling.prod(box) >= PER_SAMPLE_POSITIONS:
        # each sample gets its own GEMM anyway: unfolding more samples at once only makes
        # the column buffer larger (resnet18 at batch 8: 8 x 7 MiB instead of 7 MiB)
        nb = 1
    return tuple(tiling.iter_tiles(n, geom.output_size, nb, box)), box


def _gemm_view(
    out: np.ndarray, tile: tiling.Tile, geom: tiling.ConvGeometry, groups: int
) -> np.ndarray | None:
    """The output cells of ``tile`` as a ``(samples, groups, O/groups, positions)`` view that
    BLAS can write into (each channel's cells of the tile adjacent in memory: the tile spans
    whole trailing output dimensions), or None."""
    if tuple(tile.size[1:]) != tuple(geom.output_size[1:]):
        return None
    target = out[tile.out_index]
    count, o, *size = target.shape
    step = target.itemsize
    for extent, stride in zip(reversed(size), reversed(target.strides[2:]), strict=True):
        if extent > 1 and stride != step:
            return None
        step *= extent
    sn, sc = target.strides[:2]
    og = o // groups
    shape = (count, groups, og, tiling.prod(size))
    return tiling.strided_view(target, shape, (sn, sc * og, sc, target.itemsize))


def _pointwise(x: np.ndarray, geom: tiling.ConvGeometry, dtype: np.dtype, out: np.ndarray) -> bool:
    """True for a 1x1, stride-1, unpadded convolution whose input and output can be used as
    GEMM operands directly."""
    return (
        _pointwise_geometry(geom)
        and x.dtype == dtype
        and out.dtype == dtype
        and x.flags.c_contiguous
        and out.flags.c_contiguous
    )


def _pointwise_geometry(geom: tiling.ConvGeometry) -> bool:
    """True for a 1x1 kernel with stride 1, no padding and no zero insertion."""
    ones = (1,) * len(geom.kernel_size)
    return (
        geom.kernel_size == ones
        and geom.stride == ones
        and geom.input_dilation == ones
        and all(p == (0, 0) for p in geom.pads)
    )


def unfold(
    slab: np.ndarray,
    geom: tiling.ConvGeometry,
    box: Sequence[int],
    groups: int,
    scratch: tiling.Scratch,
    samples_inner: bool = False,
) -> np.ndarray:
    """Windows of ``slab`` copied into a matrix ``(nb, groups, C/groups * prod(K), prod(box))``,
    or with ``samples_inner`` ``(groups, C/groups * prod(K), nb * prod(box))``."""
    nb, c = slab.shape[:2]
    k = geom.kernel_size
    sn, sc, *sx = slab.strides
    windows = tiling.strided_view(
        slab,
        (nb, groups, c // groups, *k, *box),
        (
            sn,
            sc * (c // groups),
            sc,
            *(st * d for st, d in zip(sx, geom.dilation, strict=True)),
            *(st * s for st, s in zip(sx, geom.stride, strict=True)),
        ),
        writeable=False,
    )
    rows = (c // groups) * tiling.prod(k)
    if samples_inner:
        d = len(k)
        order = (1, 2, *range(3, 3 + d), 0, *range(3 + d, 3 + 2 * d))
        cols = scratch.take((groups, c // groups, *k, nb, *box))
        threads.parallel_copy(cols, windows.transpose(order), axis=0 if groups > 1 else 1)
        return cols.reshape(groups, rows, nb * tiling.prod(box))
    cols = scratch.take((nb, groups, c // groups, *k, *box))
    # the copy is memory-bound: split it over the threads along the longer leading axis
    threads.parallel_copy(cols, windows, axis=0 if nb >= c // groups else 2)
    return cols.reshape(nb, groups, rows, tiling.prod(box))


POINTWISE_GRADIENT_PLANE = 128
"""Output positions per sample from which a 1x1 layer's weight gradient multiplies each
sample's gradient with its input as they lie, ``grad[n] (O/g, P) @ x[n]^T (P, C/g)``, instead
of copying the batch side by side first (:func:`_pointwise_weight_gradient`).  Measured at
batch 8, 2 threads, medians of 7 interleaved calls: (256 -> 64, 56x56) 12.3 -> 7.6 ms,
(24 -> 144, 56x56) 5.8 -> 2.2 ms, (576 -> 96, 14x14) 2.4 -> 1.4 ms; on 7x7 planes the
per-sample GEMMs are too short: (512 -> 2048) 4.5 -> 6.9 ms."""


def _pointwise_gradient_pays(x: np.ndarray, geom: tiling.ConvGeometry, dtype: np.dtype) -> bool:
    """True for a 1x1, stride-1, unpadded layer with a C-contiguous input in the compute dtype
    and output planes of at least :data:`POINTWISE_GRADIENT_PLANE` positions."""
    return (
        _pointwise_geometry(geom)
        and x.dtype == dtype
        and x.flags.c_contiguous
        and x.shape[0] > 0
        and tiling.prod(geom.output_size) >= POINTWISE_GRADIENT_PLANE
    )


def _pointwise_weight_gradient(x: np.ndarray, grad: np.ndarray, groups: int) -> np.ndarray:
    """Weight gradient of a 1x1 stride-1 unpadded convolution without an unfolding: the sum
    over samples of ``grad[n] (O/g, P) @ x[n]^T (P, C/g)``, each product read from the arrays
    as they are (the input's transpose is a view BLAS takes as it is)."""
    n, c = x.shape[:2]
    o = grad.shape[1]
    cg, og = c // groups, o // groups
    planes = x.reshape(n, groups, cg, -1)
    grads = grad.astype(x.dtype, copy=False).reshape(n, groups, og, -1)
    total = np.empty((groups, og, cg), x.dtype)
    product = np.empty_like(total)
    for sample in range(n):
        target = total if sample == 0 else product
        matmul(grads[sample], planes[sample].transpose(0, 2, 1), out=target)
        if sample:
            total += product
    return total.reshape(o, cg, *(1,) * (x.ndim - 2))


GRADIENT_TILE_BYTES = 16 << 20
"""Workspace the weight gradient's tiles aim at (within the budget, and at least 8 times the
weight's size): the unfolded columns are still cached when the GEMM reads them (one thread,
ResNet-18 at batch 8: the stem's weight gradient 49 -> 32 ms, layer1's 3x3 34 -> 22 ms,
layer2's 22 -> 19 ms against whole-batch tiles)."""


def weight_gradient(
    x: np.ndarray, grad: np.ndarray, geom: tiling.ConvGeometry, groups: int, budget: int
) -> np.ndarray:
    """Gradient of the weight of ``conv_general(x, w)`` (geometry ``geom``) given the output
    gradient: ``sum over samples and positions of grad (O, P) @ unfold(x)^T (P, C/g * K)``.

    Unfolds the input tile by tile (every copy stays in the budget), the tile's samples side
    by side, and runs one 2-D GEMM per group and tile, ``grad (O/g, nb * P) @ unfold(x)^T
    (nb * P, C/g * K)``: fewer and larger BLAS calls than a stacked per-sample matmul (whose
    thread hand-offs cost most on a busy machine), and no transposed copy of the result.
    """
    dtype = tiling.compute_dtype(x.dtype)
    if _pointwise_gradient_pays(x, geom, dtype):
        return _pointwise_weight_gradient(x, grad, groups)
    size = tiling.itemsize(dtype)
    n, c = x.shape[:2]
    o, k = grad.shape[1], geom.kernel_size
    cg, og, kprod = c // groups, o // groups, tiling.prod(k)

    def cost(nb: int, box: Sequence[int]) -> int:
        positions = nb * tiling.prod(box)
        slab = tiling.prod(tiling.slab_shape(geom, nb, box))
        return size * (slab + positions * (c * kprod + o) + o * cg * kprod)

    # tiles small enough for the GEMM to read the columns from the cache, but each adds an
    # (O, C/g * K) product into the total: their columns should outweigh it
    aim = min(budget, max(GRADIENT_TILE_BYTES, 8 * size * o * cg * kprod))
    try:
        nb, box = tiling.plan_tiles(n, geom.output_size, cost, aim)
    except MemoryError:
        nb, box = tiling.plan_tiles(n, geom.output_size, cost, budget)
    no_tiles = n * tiling.prod(geom.output_size) == 0
    # the first tile's product initialises it
    total = (np.zeros if no_tiles else np.empty)((groups, og, cg * kprod), dtype)
    slabs, columns, grads, products = (tiling.Scratch(dtype) for _ in range(4))
    for number, tile in enumerate(tiling.iter_tiles(n, geom.output_size, nb, box)):
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        cols = unfold(slab, geom, tile.size, groups, columns, samples_inner=True)
        count = slab.shape[0]
        g = grads.take((groups, og, count, *tile.size))
        np.copyto(g, np.moveaxis(grad[tile.out_index].reshape(count, groups, og, *tile.size), 0, 2))
        g = g.reshape(groups, og, -1)
        for group in range(groups):
            if number == 0:  # the first tile's product is the total so far
                matmul(g[group], cols[group].T, out=total[group])
                continue
            product = products.take((og, cg * kprod))
            matmul(g[group], cols[group].T, out=product)
            total[group] += product
    return total.reshape(o, cg, *k).astype(x.dtype, copy=False)
