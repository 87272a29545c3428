"""Direct convolution: the definition, summed one kernel offset at a time.

``y[n, o, p] = sum over kernel offsets k and channels c of w[o, c, k] * xpad[n, c, p*s + k*d]``.
Slow for big kernels but obviously right: the reference the other algorithms are tested
against, and a good fit for tiny problems.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from . import tiling


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    dtype = tiling.compute_dtype(x.dtype)
    size = tiling.itemsize(dtype)
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups

    def cost(nb: int, box: Sequence[int]) -> int:
        positions = nb * tiling.prod(box)
        return size * (tiling.prod(tiling.slab_shape(geom, nb, box)) + positions * (c + 2 * o))

    nb, box = tiling.plan_tiles(n, geom.output_size, cost, budget)
    kernel = w.astype(dtype, copy=False).reshape(groups, og, cg, *geom.kernel_size)
    slabs, sums = tiling.Scratch(dtype), tiling.Scratch(dtype)
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        acc = sums.take((slab.shape[0], groups, og, *tile.size))
        acc.fill(0)
        for offset in itertools.product(*(range(k) for k in geom.kernel_size)):
            window = slab[(slice(None), slice(None), *_taps(offset, geom, tile.size))]
            window = window.reshape(slab.shape[0], groups, cg, -1)
            tap = kernel[(..., *offset)]  # (groups, og, cg)
            acc.reshape(slab.shape[0], groups, og, -1)[...] += np.einsum(
                "goc,ngcp->ngop", tap, window
            )
        out[tile.out_index] = acc.reshape(slab.shape[0], o, *tile.size)


def _taps(offset: Sequence[int], geom: tiling.ConvGeometry, box: Sequence[int]) -> list[slice]:
    return [
        slice(k * d, k * d + (t - 1) * s + 1, s)
        for k, d, s, t in zip(offset, geom.dilation, geom.stride, box, strict=True)
    ]
