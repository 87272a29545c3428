"""Shifted GEMMs: a stride-1 convolution as one GEMM per kernel tap on the padded input, with
no unfolded copy.

With the padded slab's spatial cells laid out flat, output position ``p`` reads the input
cell at flat index ``q(p) + offset(tap)`` for every tap, where ``q`` is the position's own
flat index in the slab and ``offset`` the tap's.  So for each tap the cells all outputs need
are one run of the flat slab starting at that tap's offset, and ``W[:, :, tap] @ run`` is an
ordinary GEMM (the run is a strided view, nothing is copied).  Outputs are computed for every
flat index up to the last output position, including the columns that fall in the padding
of each row (and plane); those are dropped when the result is copied into the output.

Each GEMM sums over the channels of a group only; the taps' partial sums are then added one
after another.  Those shorter float32 sums are more accurate than unfold's, whose GEMM adds
``C/groups * prod(K)`` products of each output in one running sum (ResNet-18's 56x56 and 28x28
3x3 layers at batch 8: 1.8-1.9e-7 relative against unfold's 4.0-5.1e-7 and PyTorch's
2.2-2.6e-7).  Big planes are computed a sample at a time (its partial sums stay in the cache
over the taps); the samples of small planes sit side by side in the columns of each GEMM
(from a channels-first copy of the slab) so that the GEMMs stay wide.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(10.0).reshape(1, 1, 2, 5)
>>> conv_general(x, np.ones((1, 1, 1, 3)), stride=(1, 1), padding=((0, 0), (1, 1)),
...              dilation=(1, 1), algorithm="shifted")
array([[[[ 1.,  3.,  6.,  9.,  7.],
         [11., 18., 21., 24., 17.]]]])
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import threads, tiling
from .unfold_gemm import weight_gradient as weight_gradient  # the weight gradient is unfold's

SHARED_FROM = 1 << 23
"""Multiply-adds from which a convolution's tiles are shared out over the threads (each
thread running its own tiles' GEMMs with BLAS on one core), as unfold does."""

TILE_BYTES = 24 << 20
"""Workspace the tiles aim at when the budget allows more (at least one sample's rows)."""

COLUMN_BYTES = 2 << 20
"""Partial sums (the running total and one tap's product) of one pass over the taps: a block
of columns that stays in the cache between the taps' GEMMs and adds."""

TOGETHER_BELOW = 784
"""Output positions per sample below which a tile's samples sit side by side in each GEMM's
columns (a channels-first copy of the slab), for GEMMs wide enough to run at BLAS's speed."""

MIN_COLUMNS = 512
"""Fewest columns a block gets, whatever its rows (narrower GEMMs lose BLAS's speed)."""


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
    o = w.shape[0]
    cg, og = c // groups, o // groups
    taps = tiling.prod(geom.kernel_size)
    # (taps, groups, O/groups, C/groups): one kernel matrix per tap and group
    kernel = w.astype(dtype, copy=False).reshape(groups, og, cg, taps)
    kernel = np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))
    workers = threads.get_num_threads()
    work = n * tiling.prod(geom.output_size) * w.size
    tiles: tuple[tiling.Tile, ...] = ()
    if workers > 1 and work >= SHARED_FROM and threads.blas_is_adjustable():
        # each thread runs its own tiles' GEMMs on one core (unless no tile fits a thread's
        # share of the budget: then one tile at a time)
        with contextlib.suppress(MemoryError):
            tiles = _shared_tiles(geom, dtype, o, budget, workers)
    if tiles:
        threads.share_out(lambda share: _run_tiles(x, kernel, geom, share, out), tiles)
        return
    _run_tiles(x, kernel, geom, _tiles(geom, dtype, o, budget)[0], out)


def _run_tiles(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: tiling.ConvGeometry,
    tiles: Sequence[tiling.Tile],
    out: np.ndarray,
) -> None:
    """Compute ``tiles`` one after another (``kernel``: ``(taps, groups, O/groups,
    C/groups)`` in the compute dtype)."""
    dtype = kernel.dtype
    slabs, copies, sums, parts = (tiling.Scratch(dtype) for _ in range(4))
    # each tap's first cell in the slab (its run starts there)
    corners = [
        tuple(k * d for k, d in zip(tap, geom.dilation, strict=True))
        for tap in itertools.product(*(range(k) for k in geom.kernel_size))
    ]
    for tile in tiles:
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        if slab.shape[0] > 1 and tiling.prod(tile.size) < TOGETHER_BELOW:
            # small planes: the samples side by side in each GEMM's columns (channels first)
            together = copies.take((slab.shape[1], slab.shape[0], *slab.shape[2:]))
            np.copyto(together, slab.swapaxes(0, 1))
            groups_of = [(together[:, 0], together.strides[1], slab.shape[0], slice(None))]
        else:  # big planes: a sample at a time, its partial sums cached over the taps
            slab = _flat_ready(slab, tile.size, copies)
            step = slab.strides[0]
            groups_of = [(slab[i], step, 1, slice(i, i + 1)) for i in range(slab.shape[0])]
        target = out[tile.out_index]
        for base, step, count, samples in groups_of:
            _compute(kernel, base, step, count, corners, tile.size, sums, parts, target[samples])


def _compute(
    kernel: np.ndarray,
    base: np.ndarray,
    sample_step: int,
    count: int,
    corners: Sequence[tuple[int, ...]],
    box: Sequence[int],
    sums: tiling.Scratch,
    parts: tiling.Scratch,
    target: np.ndarray,
) -> None:
    """The output ``box`` of ``count`` samples whose padded slabs start at ``base`` (one
    sample's ``(C, *L)`` view) and follow each other ``sample_step`` bytes apart, written
    to ``target`` ``(count, O, *box)``."""
    groups, og, cg = kernel.shape[1:]
    size = kernel.itemsize
    steps = [stride // size for stride in base.strides[1:]]
    span = (count - 1) * (sample_step // size) + _span(box, steps)
    total = sums.take((groups, og, span))
    sc, so = base.strides[0], total.strides[1]
    runs = [
        as_strided(
            base[(slice(None), *corner)],
            shape=(groups, cg, span),
            strides=(sc * cg, sc, size),
            writeable=False,
        )
        for corner in corners
    ]
    with np.errstate(all="ignore"):  # dropped columns may overflow; never reported
        for cols in _column_blocks(groups * og * size, span):
            _accumulate(kernel, [run[..., cols] for run in runs], total[..., cols], parts)
    valid = as_strided(  # the output positions among the flat columns
        total,
        shape=(count, groups * og, *box),
        strides=(sample_step // size * size, so, *(step * size for step in steps)),
        writeable=False,
    )
    np.copyto(target, valid, casting="unsafe")


def _accumulate(
    kernel: np.ndarray,
    runs: Sequence[np.ndarray],
    total: np.ndarray,
    parts: tiling.Scratch,
) -> None:
    """``total = sum over taps of kernel[tap] @ runs[tap]``: one GEMM per tap (a sum over
    the channels of a group), the taps' products added one after another."""
    product = parts.take(total.shape)
    for number, tap_run in enumerate(runs):
        if number == 0:
            np.matmul(kernel[0], tap_run, out=total)
            continue
        np.matmul(kernel[number], tap_run, out=product)
        total += product


def _column_blocks(column_bytes: int, span: int) -> list[slice]:
    """``span`` columns in near-equal blocks whose total and product fit
    :data:`COLUMN_BYTES` (at least :data:`MIN_COLUMNS` columns each)."""
    width = max(MIN_COLUMNS, COLUMN_BYTES // (2 * column_bytes))
    return threads.split(span, -(-span // width))


def _span(box: Sequence[int], steps: Sequence[int]) -> int:
    """Flat columns from the first to the last output position of ``box`` (inclusive) in a
    slab whose spatial strides are ``steps`` elements."""
    return sum((b - 1) * s for b, s in zip(box, steps, strict=True)) + 1


def _flat_ready(slab: np.ndarray, box: Sequence[int], scratch: tiling.Scratch) -> np.ndarray:
    """``slab``, or a C-contiguous copy of it when its cells are not at whole-element strides
    with the last dimension contiguous, or when (a view into a wider input) its run of flat
    columns would be longer than a copy's."""
    size = slab.itemsize
    lengths = slab.shape[2:]
    dense = [tiling.prod(lengths[d + 1 :]) for d in range(len(lengths))]
    strides = slab.strides[2:]
    usable = (not strides or strides[-1] == size) and all(
        st > 0 and st % size == 0 for st in slab.strides
    )
    if usable and _span(box, [st // size for st in strides]) <= _span(box, dense):
        return slab
    copy = scratch.take(slab.shape)
    np.copyto(copy, slab)
    return copy


def _cost(geom: tiling.ConvGeometry, size: int, out_channels: int, nb: int, box) -> int:
    """Workspace of one tile: its padded slab (and its channels-first copy, or the copy of a
    view that cannot be read flat), the partial sums on the flat columns of one sample (all samples
    when they sit side by side) and a tap's product."""
    slab = tiling.slab_shape(geom, nb, box)
    lengths = slab[2:]
    span = _span(box, [tiling.prod(lengths[d + 1 :]) for d in range(len(lengths))])
    copies = 1
    if nb > 1 and tiling.prod(box) < TOGETHER_BELOW:
        span += (nb - 1) * tiling.prod(lengths)
        copies = 2
    return size * (copies * tiling.prod(slab) + 2 * out_channels * span)


@functools.lru_cache(maxsize=1024)
def _tiles(
    geom: tiling.ConvGeometry, dtype: np.dtype, out_channels: int, budget: int
) -> tuple[tuple[tiling.Tile, ...], tuple[int, ...]]:
    """The tiles of one call signature (and their output box), planned once."""
    size = tiling.itemsize(dtype)

    def cost(nb: int, box: Sequence[int]) -> int:
        return _cost(geom, size, out_channels, nb, box)

    n = geom.input_shape[0]
    rows = (1, *geom.output_size[1:])
    aim = min(budget, max(TILE_BYTES, cost(1, rows)))
    nb, box = tiling.plan_tiles(n, geom.output_size, cost, aim)
    return tuple(tiling.iter_tiles(n, geom.output_size, nb, box)), box


@functools.lru_cache(maxsize=1024)
def _shared_tiles(
    geom: tiling.ConvGeometry, dtype: np.dtype, out_channels: int, budget: int, workers: int
) -> tuple[tiling.Tile, ...]:
    """Tiles for ``workers`` threads: each thread's workspace within its share of the budget,
    and at least one tile per thread (see :func:`tiling.thread_tiles`)."""
    tiles, box = _tiles(geom, dtype, out_channels, max(1, budget // workers))
    return tiling.thread_tiles(tiles, box, geom, workers)
