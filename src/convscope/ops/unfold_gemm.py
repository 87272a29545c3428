"""Unfold + GEMM: copy each tile's receptive windows into a matrix (im2col) and let BLAS
multiply it by the kernel matrix.

For a tile of ``nb`` samples and ``P`` output positions the unfolded matrix has shape
``(groups, C/groups * prod(K), nb * P)``, laid out so the windows are gathered by one strided
copy and the product lands as ``(groups, O/groups, nb, P)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import threads, tiling


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
    o, k = w.shape[0], w.shape[2:]
    kprod = tiling.prod(k)

    def cost(nb: int, box: Sequence[int]) -> int:
        positions = nb * tiling.prod(box)
        slab = tiling.prod(tiling.slab_shape(geom, nb, box))
        return size * (slab + positions * (c * kprod + o))

    nb, box = tiling.plan_tiles(n, geom.output_size, cost, budget)
    kernel = w.astype(dtype, copy=False).reshape(groups, o // groups, (c // groups) * kprod)
    slabs, columns, products = (tiling.Scratch(dtype) for _ in range(3))
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        slab = tiling.extract_slab(x, geom, tile, dtype, slabs)
        cols = unfold(slab, geom, tile.size, groups, columns)
        product = products.take((groups, o // groups, slab.shape[0] * tiling.prod(tile.size)))
        np.matmul(kernel, cols.reshape(groups, kernel.shape[2], -1), out=product)
        product = product.reshape(o, slab.shape[0], *tile.size)
        threads.parallel_copy(out[tile.out_index], np.moveaxis(product, 1, 0), axis=1)


def unfold(
    slab: np.ndarray,
    geom: tiling.ConvGeometry,
    box: Sequence[int],
    groups: int,
    scratch: tiling.Scratch,
) -> np.ndarray:
    """Windows of ``slab`` copied into an array ``(groups, C/groups, *K, nb, *box)``."""
    nb, c = slab.shape[:2]
    k = geom.kernel_size
    sn, sc, *sx = slab.strides
    windows = as_strided(
        slab,
        shape=(nb, groups, c // groups, *k, *box),
        strides=(
            sn,
            sc * (c // groups),
            sc,
            *(st * d for st, d in zip(sx, geom.dilation, strict=True)),
            *(st * s for st, s in zip(sx, geom.stride, strict=True)),
        ),
        writeable=False,
    )
    d = len(k)
    order = (1, 2, *range(3, 3 + d), 0, *range(3 + d, 3 + 2 * d))
    cols = scratch.take((groups, c // groups, *k, nb, *box))
    # the copy is memory-bound: split it over the threads along the longer leading axis
    threads.parallel_copy(cols, windows.transpose(order), axis=0 if groups >= c // groups else 1)
    return cols
