"""Winograd F(2x2, 3x3): a 2-D 3x3 stride-1 convolution with 16 instead of 36 multiplications
per 2x2 output tile.

The output is cut into 2x2 tiles, each reading a 4x4 tile of the padded input.  With

``B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]``,
``G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]``,
``A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]``,

a tile's output is ``A^T [sum_c (G g_c G^T) * (B^T d_c B)] A``.  Per tile of the plan (batch
entries times an output box, from :func:`tiling.plan_tiles`, capped at :data:`TILE_BYTES`
so the transforms run in cache):

* the padded slab (:func:`tiling.extract_slab`) is split into its four row/column parity
  planes, each ``(th + 1, tw + 1)`` for ``th x tw`` output tiles.  Every later array is
  indexed *flat* over such planes: tile ``(i, j)`` sits at ``i * (tw + 1) + j`` and the input
  row/column ``k`` of a tile is plane ``k % 2`` shifted by ``k // 2``, so each step of the
  transforms is one contiguous 1-D ufunc pass (the last row and column of every plane are
  junk tiles, computed and dropped);
* **input transform** ``V = B^T d B``: rows, then columns, 24 add/subtract passes, ``V``
  laid out ``(16, groups, C/g, nb * plane)`` (channels first from the parity split on);
* **GEMMs** ``M[i] = U[i] @ V[i]`` in one ``np.matmul`` batched over the 16 positions and
  the groups, ``U = G g G^T`` ``(16, groups, O/g, C/g)`` computed once per call;
* **output transform** ``Y = A^T M A``: rows, then columns, 8 passes; the four output
  parities are copied into ``out``'s strided view (odd boxes drop a row/column).

With numba installed (and a C-contiguous ``out`` in the compute dtype) the two transforms are
compiled kernels instead (``winograd_input``, ``winograd_output``): ``V`` is built straight
from the slab, one (sample, channel) plane per job, with no parity planes or junk tiles, and
``Y`` is written straight into ``out``; the same operations in the same order.  The kernel
transform ``U`` is one product ``(G kron G) @ g`` over all 3x3 kernels either way.

The cost given to ``plan_tiles`` counts the slab, parity planes, row-transformed planes,
``V``, ``M``, the row-transformed ``M``, ``Y`` and ``U``.  Floating-point only (float16 is
computed in float32): the transforms divide by two, so integer results would not be exact.
The float32 error matches unfold's (about 1e-7 of the magnitude scale ``max |x| conv |w|``
on ResNet-like data, see ``tests/test_conv_algorithms.py``).

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> w = np.ones((1, 1, 3, 3))
>>> conv_general(x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
...              algorithm="winograd")
array([[[[45., 54.],
         [81., 90.]]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import jit, threads, tiling
from .matmul import matmul

REFUSAL = (
    "winograd algorithm is for floating-point 2-D 3x3 convolutions with stride 1, dilation 1 "
    "and no input dilation; use 'unfold' or 'direct'"
)

TILE_BYTES = 8 << 20
"""Workspace of one tile (at most the budget): small tiles keep the NumPy passes in cache."""

COMPILED_TILE_BYTES = 24 << 20
"""The same with the compiled transforms, which read and write each value once: bigger tiles
give the GEMMs more columns (2 threads: U-Net at 256x256 batch 8 1244 -> 1146 ms, batch 1
181 -> 172 ms against 8 MiB tiles)."""

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    """Winograd F(2x2, 3x3) ``conv_general`` into ``out``, tile by tile."""
    if (
        geom.kernel_size != (3, 3)
        or geom.stride != (1, 1)
        or geom.dilation != (1, 1)
        or geom.input_dilation != (1, 1)
    ):
        raise ValueError(f"{REFUSAL} (got {geom})")
    dtype = tiling.compute_dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{REFUSAL}: the transforms are not exact for {x.dtype} (got {dtype})")
    size = tiling.itemsize(dtype)
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups

    compiled = jit.kernels() if out.dtype == dtype and out.flags.c_contiguous else None

    def cost(nb: int, box: Sequence[int]) -> int:
        th, tw = (-(-b // 2) for b in box)
        slab = nb * c * (2 * th + 2) * (2 * tw + 2)
        kernel = 16 * o * cg
        if compiled is not None:  # V and M: 16 values per tile and input / output channel
            return size * (slab + 16 * (c + o) * nb * th * tw + kernel)
        planes = nb * (th + 1) * (tw + 1)
        # parity planes (4), rows (8), V (16) per input channel; M (16), output rows (8) and
        # columns (4) per output channel
        return size * (slab + 28 * c * planes + 28 * o * planes + kernel)

    # calls running side by side (batch-parallel shares) divide the tile size among them
    aim = (TILE_BYTES if compiled is None else COMPILED_TILE_BYTES) // threads.concurrent_shares()
    limit = min(budget, cost(0, (0, 0)) + aim)  # the kernel, plus a cache-sized tile
    nb, box = tiling.plan_tiles(n, geom.output_size, cost, limit)
    # tiles start at even output positions; ceil(b / 2) tiles cost the same for b and b + 1
    box = tuple(b if b == t else b + b % 2 for b, t in zip(box, geom.output_size, strict=True))
    # U = G g G^T of every 3x3 kernel as one product (G kron G) (16, 9) @ g (9, O * C/g):
    # the weights read once, in place (a transposed view, no copy), by BLAS in this order
    # (512 x 512 kernels: 1.3 ms; the engine's few-rows order would add a transposed copy)
    kron = np.kron(G, G).astype(dtype)
    kernel = np.matmul(kron, w.astype(dtype, copy=False).reshape(-1, 9).T)
    kernel = kernel.reshape(16, groups, og, cg)
    buffers = [tiling.Scratch(dtype) for _ in range(7)]
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        _tile(x, kernel, geom, tile, groups, out, dtype, buffers, compiled)


def _tile(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: tiling.ConvGeometry,
    tile: tiling.Tile,
    groups: int,
    out: np.ndarray,
    dtype: np.dtype,
    buffers: Sequence[tiling.Scratch],
    compiled: Any,
) -> None:
    """One tile: transforms and GEMMs over the 2x2 output tiles of ``tile``'s box (the
    compiled transforms when ``compiled``, the kernel module, is given)."""
    slab_buf, phase_buf, rows_buf, v_buf, m_buf, s_buf, y_buf = buffers
    th, tw = (-(-b // 2) for b in tile.size)
    # the slab of the even box (2*th, 2*tw): cells past the box are read only by outputs
    # that are thrown away
    even = tiling.Tile(tile.batch, tile.start, (tile.start[0] + 2 * th, tile.start[1] + 2 * tw))
    d = tiling.extract_slab(x, geom, even, dtype, slab_buf)
    nb, c = d.shape[:2]
    o = kernel.shape[1] * kernel.shape[2]
    if compiled is not None:
        _compiled_tile(compiled, d, kernel, tile, groups, out, (th, tw), (v_buf, m_buf))
        return
    row, plane = tw + 1, (th + 1) * (tw + 1)
    run = nb * c * plane  # one parity plane of every channel and sample, flat

    # parity planes ph[p, q] = d[:, :, p::2, q::2], channels first (C, nb, th + 1, tw + 1) so
    # that the GEMMs below see (C, nb * plane) matrices, followed by a
    # zeroed row (the flat reads below run up to one row past the end)
    flat = phase_buf.take((4 * run + row,))
    flat[4 * run :] = 0
    ph = flat[: 4 * run].reshape(2, 2, c, nb, th + 1, tw + 1)
    for p in range(2):
        for q in range(2):
            ph[p, q] = d[:, :, p::2, q::2].swapaxes(0, 1)
    # rows: r[a, q] = (B^T d)[a] at the columns of parity q.  Each plane is read flat, so a
    # pass is one contiguous run: tile (i, j) sits at i * row + j, row k of its input at
    # offset (k // 2) * row of plane k % 2; the last row and column of every plane are junk
    r = rows_buf.take((8 * run + 1,))
    r[-1] = 0
    rq = r[: 8 * run].reshape(4, 2, run)
    for q in range(2):
        d0, d1, d2, d3 = (flat[(2 * (k % 2) + q) * run + (k // 2) * row :][:run] for k in range(4))
        np.subtract(d0, d2, out=rq[0, q])
        np.add(d1, d2, out=rq[1, q])
        np.subtract(d2, d1, out=rq[2, q])
        np.subtract(d1, d3, out=rq[3, q])
    # columns: V[a, b] = (B^T d B)[a, b], laid out (16, C, nb, plane) for the GEMMs
    v = v_buf.take((4, 4, run))
    for a in range(4):
        e0, e1, e2, e3 = (r[(2 * a + k % 2) * run + k // 2 :][:run] for k in range(4))
        np.subtract(e0, e2, out=v[a, 0])
        np.add(e1, e2, out=v[a, 1])
        np.subtract(e2, e1, out=v[a, 2])
        np.subtract(e1, e3, out=v[a, 3])

    m = m_buf.take((4, 4, o, nb, plane))
    matmul(
        kernel,
        v.reshape(16, groups, c // groups, nb * plane),
        out=m.reshape(16, groups, o // groups, nb * plane),
    )

    # output rows: s[i] = (A^T M)[i], (2, 4, O, nb, plane)
    s = s_buf.take((2, 4, o, nb, plane))
    np.add(m[0], m[1], out=s[0])
    s[0] += m[2]
    np.subtract(m[1], m[2], out=s[1])
    s[1] -= m[3]
    # output columns: y[:, j] = (A^T M A)[:, j], (2, 2, O, nb, plane)
    y = y_buf.take((2, 2, o, nb, plane))
    np.add(s[:, 0], s[:, 1], out=y[:, 0])
    y[:, 0] += s[:, 2]
    np.subtract(s[:, 1], s[:, 2], out=y[:, 1])
    y[:, 1] -= s[:, 3]
    grid = y.reshape(2, 2, o, nb, th + 1, tw + 1).swapaxes(2, 3)
    bh, bw = tile.size
    box = out[tile.out_index]
    for i in range(2):
        for j in range(2):
            box[:, :, i::2, j::2] = grid[i, j, :, :, : (bh - i + 1) // 2, : (bw - j + 1) // 2]


def _compiled_tile(
    compiled: Any,
    d: np.ndarray,
    kernel: np.ndarray,
    tile: tiling.Tile,
    groups: int,
    out: np.ndarray,
    tiles: tuple[int, int],
    buffers: Sequence[tiling.Scratch],
) -> None:
    """One tile with the compiled transforms: ``V`` straight from the slab (no parity
    planes, no junk tiles), the GEMMs, and ``Y`` written straight into ``out``; the same
    operations in the same order as the NumPy passes."""
    th, tw = tiles
    v_buf, m_buf = buffers
    nb, c = d.shape[:2]
    o = kernel.shape[1] * kernel.shape[2]
    count = th * tw
    v = v_buf.take((16, c, nb, count))
    jit.run(compiled.winograd_input, d, v, th, tw)
    m = m_buf.take((16, o, nb, count))
    matmul(
        kernel,
        v.reshape(16, groups, c // groups, nb * count),
        out=m.reshape(16, groups, o // groups, nb * count),
    )
    bh, bw = tile.size
    start = tile.batch.start or 0
    jit.run(compiled.winograd_output, m, out, th, tw, start, *tile.start, bh, bw)
