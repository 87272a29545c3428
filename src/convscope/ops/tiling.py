"""Splitting a convolution into tiles that fit the workspace budget.

A tile is a range of batch entries times a box of output positions.  For each tile the
algorithm gets the *slab*: the part of the padded, zero-inserted input that the box reads,
materialised (or viewed, when no padding or zero insertion touches it) in the compute dtype.
Padding is never applied to the whole input at once, so its copy is bounded too.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .threads import parallel_copy


@dataclass(frozen=True)
class ConvGeometry:
    """Resolved arguments of one call of the primitive (batched input, normalised tuples)."""

    input_shape: tuple[int, ...]  # (N, C, *S)
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # per spatial dim, may be negative (crop)
    dilation: tuple[int, ...]
    input_dilation: tuple[int, ...]
    output_size: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation, strict=True))

    def region(self, start: Sequence[int], stop: Sequence[int]) -> list[tuple[int, int]]:
        """Padded-input coordinates ``[lo, hi)`` read by the output box ``[start, stop)``."""
        return [
            (a * s, (b - 1) * s + e)
            for a, b, s, e in zip(start, stop, self.stride, self.extent, strict=True)
        ]


@dataclass(frozen=True)
class Tile:
    batch: slice
    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def out_index(self) -> tuple[slice, ...]:
        box = tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))
        return (self.batch, slice(None), *box)


CostFn = Callable[[int, Sequence[int]], int]


def plan_tiles(
    batch: int, output_size: Sequence[int], cost: CostFn, budget: int
) -> tuple[int, tuple[int, ...]]:
    """Largest (batch count, output box) whose ``cost(batch, box)`` in bytes fits ``budget``.

    The batch shrinks first, then the spatial dimensions in order.  Raises ``MemoryError``
    when not even one output position fits.
    """
    box = list(output_size)
    if batch == 0 or 0 in box or cost(batch, box) <= budget:
        return max(batch, 1), tuple(box)
    per_sample = cost(1, box)
    nb = max(1, min(batch, budget // max(per_sample, 1)))
    if cost(nb, box) <= budget:
        return nb, tuple(box)
    for dim in range(len(box)):
        lo, hi = 1, box[dim]
        while lo < hi:  # largest extent along ``dim`` that fits
            mid = (lo + hi + 1) // 2
            trial = [*box[:dim], mid, *box[dim + 1 :]]
            lo, hi = (mid, hi) if cost(1, trial) <= budget else (lo, mid - 1)
        box[dim] = lo
        if cost(1, box) <= budget:
            return 1, tuple(box)
    raise MemoryError(
        f"one output position of this convolution needs {cost(1, box)} bytes of workspace, more "
        f"than the budget of {budget} bytes; raise it with convscope.set_workspace_budget()"
    )


def iter_tiles(
    batch: int, output_size: Sequence[int], nb: int, box: Sequence[int]
) -> Iterator[Tile]:
    ranges = [
        [(a, min(a + step, total)) for a in range(0, total, step)]
        for total, step in zip(output_size, box, strict=True)
    ]
    for n0 in range(0, batch, nb):
        for parts in itertools.product(*ranges):
            yield Tile(
                slice(n0, min(n0 + nb, batch)),
                tuple(a for a, _ in parts),
                tuple(b for _, b in parts),
            )


def thread_tiles(
    tiles: tuple[Tile, ...], box: Sequence[int], geom: ConvGeometry, workers: int
) -> tuple[Tile, ...]:
    """``tiles`` (planned with box ``box``) with at least one per thread: a tile of several
    samples cut into shares of the samples, a lone sample's output into row bands."""
    if len(tiles) >= workers:
        return tiles
    n, size = geom.input_shape[0], geom.output_size
    nb = tiles[0].batch.stop - tiles[0].batch.start
    if nb >= workers:
        return tuple(iter_tiles(n, size, -(-nb // workers), box))
    rows = max(1, -(-box[0] // workers))
    return tuple(iter_tiles(n, size, nb, (rows, *box[1:])))


def slab_shape(geom: ConvGeometry, nb: int, box: Sequence[int]) -> tuple[int, ...]:
    lengths = [(t - 1) * s + e for t, s, e in zip(box, geom.stride, geom.extent, strict=True)]
    return (nb, geom.input_shape[1], *lengths)


def slab_is_view(geom: ConvGeometry, region: Sequence[tuple[int, int]]) -> bool:
    """True when the region lies inside the input and no zeros are inserted (no copy needed)."""
    if any(i != 1 for i in geom.input_dilation):
        return False
    return all(
        lo - before >= 0 and hi - before <= size
        for (lo, hi), (before, _), size in zip(region, geom.pads, geom.input_shape[2:], strict=True)
    )


class Scratch:
    """A reusable flat buffer handing out arrays of any shape up to its size.

    Tiles of one call reuse the same memory instead of allocating (and page-faulting) a new
    buffer per tile, and two tiles' buffers are never alive at once.
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self._flat = np.empty(0, self.dtype)

    def take(self, shape: Sequence[int]) -> np.ndarray:
        count = math.prod(shape)
        if count > self._flat.size:
            self._flat = np.empty(count, self.dtype)
        return self._flat[:count].reshape(shape)


@dataclass(frozen=True)
class SlabRecipe:
    """How to build one tile's slab, worked out once per (geometry, tile) and reused.

    ``view`` indexes the input directly when the slab needs no padding or zero insertion;
    otherwise the slab (spatial ``shape``) is zeroed where ``zero`` says (everywhere
    when ``dilated``) and the input block ``src`` copied to ``dst``; ``empty`` slabs read only
    padding.
    """

    view: tuple[slice, ...] | None
    shape: tuple[int, ...]
    src: tuple[slice, ...]
    dst: tuple[slice, ...]
    zero: tuple[tuple[slice, ...], ...]
    dilated: bool
    empty: bool

    def extract(
        self, x: np.ndarray, batch: slice, dtype: np.dtype, scratch: Scratch | None
    ) -> np.ndarray:
        source = x[batch]
        if self.view is not None and source.dtype == dtype:
            return source[self.view]
        shape = source.shape[:2] + self.shape
        slab = np.empty(shape, dtype) if scratch is None else scratch.take(shape)
        if self.dilated or self.empty:
            slab.fill(0)
            if self.empty:
                return slab
        for index in self.zero:
            slab[index] = 0
        parallel_copy(
            slab[self.dst],
            source[self.src],
            axis=1 if slab.shape[1] > slab.shape[0] else 0,
        )
        return slab


@functools.lru_cache(maxsize=8192)
def slab_recipe(geom: ConvGeometry, start: tuple[int, ...], stop: tuple[int, ...]) -> SlabRecipe:
    """The :class:`SlabRecipe` of the output box ``[start, stop)`` (all batch entries)."""
    region = geom.region(start, stop)
    channels = slice(None)
    lead = (slice(None), channels)
    view = None
    if slab_is_view(geom, region):
        view = (
            *lead,
            *(
                slice(lo - before, hi - before)
                for (lo, hi), (before, _) in zip(region, geom.pads, strict=True)
            ),
        )
    shape = tuple(hi - lo for lo, hi in region)
    dilated = any(i != 1 for i in geom.input_dilation)
    src_index, dst_index = [], []
    empty = False
    for (lo, hi), (before, _), step, size in zip(
        region, geom.pads, geom.input_dilation, geom.input_shape[2:], strict=True
    ):
        # input cell i sits at padded coordinate before + i*step; keep those inside [lo, hi)
        first = max(0, -((before - lo) // step))
        last = min(size - 1, (hi - 1 - before) // step)
        if last < first:
            empty = True
            break
        src_index.append(slice(first, last + 1))
        begin = before + first * step - lo
        dst_index.append(slice(begin, begin + (last - first) * step + 1, step))
    zero: list[tuple[slice, ...]] = []
    if not dilated and not empty:  # zero only the padding around the copied block
        for d, part in enumerate(dst_index):
            outer = (*lead, *dst_index[:d])
            if part.start > 0:
                zero.append((*outer, slice(0, part.start)))
            if part.stop < shape[d]:
                zero.append((*outer, slice(part.stop, None)))
    return SlabRecipe(
        view, shape, (*lead, *src_index), (*lead, *dst_index), tuple(zero), dilated, empty
    )


def extract_slab(
    x: np.ndarray, geom: ConvGeometry, tile: Tile, dtype: np.dtype, scratch: Scratch | None = None
) -> np.ndarray:
    """The padded, zero-inserted input cells ``tile`` reads, shape ``slab_shape``."""
    recipe = slab_recipe(geom, tile.start, tile.stop)
    return recipe.extract(x, tile.batch, dtype, scratch)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic happens in: float16 is accumulated in float32, as PyTorch does."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def strided_view(
    a: np.ndarray, shape: Sequence[int], strides: Sequence[int], writeable: bool = True
) -> np.ndarray:
    """NumPy's ``as_strided`` for the engine's per-call paths: built straight on ``a``'s
    buffer when ``a`` is C-contiguous (about 1 us against as_strided's 3.4, which goes
    through an ``__array_interface__``), else by ``as_strided``.  The view must lie within
    ``a``'s memory (NumPy checks that here).

    >>> a = np.arange(6.0)
    >>> strided_view(a, (2, 3), (24, 8), writeable=False).tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    if a.flags.c_contiguous and a.size:
        view = np.ndarray(tuple(shape), a.dtype, buffer=a, strides=tuple(strides))
        if not writeable:
            view.flags.writeable = False
        return view
    return as_strided(a, shape=tuple(shape), strides=tuple(strides), writeable=writeable)


def itemsize(dtype: np.dtype) -> int:
    return np.dtype(dtype).itemsize


def prod(values: Sequence[int]) -> int:
    return math.prod(values)


def all_finite(a: np.ndarray) -> bool:
    """True when ``a`` holds no Inf or NaN: one summing pass and no full-size mask (a sum
    that overflows only sends the call to a slower, equally exact algorithm)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(a, axis=None)))
