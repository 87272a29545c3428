"""GEMM + fold (col2im): a stride-1 correlation computed from the input side.

Every input cell ``i`` of a stride-1 call lands on the zero-inserted, padded grid at
``before + i * input_dilation`` and so reaches output ``o = before + i * input_dilation -
t * dilation`` through kernel tap ``t``.  One GEMM per tile gives every cell's contribution
to every (output channel, tap), ``(O/groups * prod(K), C/groups) @ (C/groups, positions)``,
and one strided add per tap scatters them into the output.

This is how transposed convolutions and input gradients are cheapest when the output has
fewer channels than the input (a ResNet stem's input gradient: 64 -> 3 channels): the
matrix the GEMM writes has ``O * prod(K)`` rows where unfolding the zero-inserted input
would copy ``C * prod(K)``; the multiply-adds are the same.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.array([[[1.0, 2.0, 3.0]]])
>>> conv_general(x, np.array([[[1.0, 10.0]]]), stride=(1,), padding=((1, 1),), dilation=(1,),
...              input_dilation=(2,), algorithm="fold")
array([[[10.,  1., 20.,  2., 30.,  3.]]])
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from . import tiling
from .matmul import matmul

REFUSAL = "fold is for stride-1 calls (transposed convolutions and input gradients)"


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    """Stride-1 ``conv_general`` into ``out`` by GEMM and per-tap strided adds."""
    if any(s != 1 for s in geom.stride):
        raise ValueError(REFUSAL)
    dtype = tiling.compute_dtype(x.dtype)
    size = tiling.itemsize(dtype)
    n, c = x.shape[:2]
    o, kernel = w.shape[0], geom.kernel_size
    cg, og, taps = c // groups, o // groups, tiling.prod(kernel)
    # rows (output channel, tap) of each group's matrix, columns its input channels
    matrix = w.astype(dtype, copy=False).reshape(groups, og, cg, taps).transpose(0, 1, 3, 2)
    matrix = np.ascontiguousarray(matrix).reshape(groups, og * taps, cg)

    def cost(nb: int, box: Sequence[int]) -> int:
        return size * nb * tiling.prod(box) * (o * taps + c)

    spatial = x.shape[2:]
    nb, box = tiling.plan_tiles(n, spatial, cost, budget)
    direct = out.dtype == dtype and out.flags.c_contiguous
    acc = out if direct else np.empty(out.shape, dtype)
    # taps as long as the zero insertion (a 2x2 stride-2 transposed convolution): every
    # output cell takes at most one contribution, copied instead of added
    single = ASSIGN_SINGLE and all(
        k == step and d == 1
        for k, step, d in zip(kernel, geom.input_dilation, geom.dilation, strict=True)
    )
    if not (single and _covered(geom, spatial, out.shape[2:])):
        acc[...] = 0
    acc_groups = acc.reshape(n, groups, og, *out.shape[2:])
    inputs, columns = tiling.Scratch(dtype), tiling.Scratch(dtype)
    for tile in tiling.iter_tiles(n, spatial, nb, box):
        index = (
            tile.batch,
            slice(None),
            *(slice(a, b) for a, b in zip(tile.start, tile.stop, strict=True)),
        )
        count, positions = len(range(n)[tile.batch]), tiling.prod(tile.size)
        # (groups, C/groups, samples, positions): one GEMM covers every sample of the tile
        cells = inputs.take((groups, cg, count, *tile.size))
        np.copyto(cells, np.moveaxis(x[index].reshape(count, groups, cg, *tile.size), 0, 2))
        cols = columns.take((groups, og * taps, count * positions))
        matmul(matrix, cells.reshape(groups, cg, count * positions), out=cols)
        cols = cols.reshape(groups, og, *kernel, count, *tile.size)
        _scatter(cols, acc_groups[tile.batch], geom, tile.start, tile.size, out.shape[2:], single)
    if not direct:
        out[...] = acc


ASSIGN_SINGLE = True
"""Copy (not add) the contributions when each output cell takes at most one, and skip
zeroing the output when every cell takes one: the benchmark U-Net (two ConvTranspose2d
2x2/2) 110.5 -> 108.4 ms at batch 1, 453 -> 436 ms at batch 8 (in-process A/B, 2 threads)."""


def _covered(geom: tiling.ConvGeometry, size: Sequence[int], out_size: Sequence[int]) -> bool:
    """Whether, with taps as long as the zero insertion, every output cell is reached: per
    dimension the cells ``before + i * step - t`` (``t < step``) span ``[before - step + 1,
    before + (size - 1) * step]``, which must hold ``[0, length)``."""
    return all(
        before - step + 1 <= 0 and before + (n - 1) * step >= length - 1
        for (before, _), step, n, length in zip(
            geom.pads, geom.input_dilation, size, out_size, strict=True
        )
    )


def _scatter(
    cols: np.ndarray,
    acc: np.ndarray,
    geom: tiling.ConvGeometry,
    start: Sequence[int],
    box: Sequence[int],
    out_size: Sequence[int],
    single: bool = False,
) -> None:
    """Add each tap's contributions ``cols[g, o, tap, n, cells]`` into ``acc[n, g, o, ...]``
    (copy them, when ``single``: no cell takes two)."""
    for tap in itertools.product(*(range(k) for k in geom.kernel_size)):
        src, dst = [], []
        for t, a, b, step, d, (before, _), length in zip(
            tap, start, box, geom.input_dilation, geom.dilation, geom.pads, out_size, strict=True
        ):
            first = before + a * step - t * d  # output position of the tile's first cell
            lo = 0 if first >= 0 else -(first // step)  # first cell landing at >= 0
            hi = min(b, (length - 1 - first) // step + 1) if first < length else 0
            src.append(slice(lo, hi))
            dst.append(slice(first + lo * step, first + (hi - 1) * step + 1, step))
        if any(part.stop <= part.start for part in src):
            continue  # this tap takes no cell of the tile into the output
        view = acc[(slice(None), slice(None), slice(None), *dst)]
        part = cols[(slice(None), slice(None), *tap, slice(None), *src)]  # (g, og, n, ...)
        if single:
            np.copyto(view, np.moveaxis(part, 2, 0))
        else:
            np.add(view, np.moveaxis(part, 2, 0), out=view)
