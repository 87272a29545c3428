"""Winograd F(2x2, 3x3) and F(4x4, 3x3): a convolution whose kernel is 3x3 (stride 1,
dilation 1) over the last two dimensions, with 16 multiplications per 2x2 output tile or 36
per 4x4 tile instead of 36 or 144.

Leading dimensions (the time of a 3-D video convolution, ``(kt, 3, 3)`` kernels) keep any
kernel size, stride, dilation and padding: each input *frame* (a position of the leading
dimensions) is transformed once, and the GEMM of each output frame sums over the taps of
its input frames and their channels at once (``K = taps x C/groups``), the frames it reads
taken as one strided matrix of ``V`` when they are evenly spaced (one group and no
dilation, or a single tap) and gathered into a buffer otherwise.  A 2-D convolution is the
case of one frame and one tap.

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
* **input transform** ``V = B^T d B`` of each frame: rows, then columns, 24 add/subtract
  passes, ``V`` laid out ``(16, frames, C, nb * plane)`` (channels first from the parity
  split on);
* **GEMMs** ``M[i] = U[i] @ V[i]`` in one ``np.matmul`` batched over the 16 positions, the
  output frames and the groups, ``U = G g G^T`` ``(16, groups, O/g, taps * C/g)`` computed
  once per call;
* **output transform** ``Y = A^T M A``: rows, then columns, 8 passes; the four output
  parities are copied into ``out``'s strided view (odd boxes drop a row/column).

With numba installed (and a C-contiguous ``out`` in the compute dtype) the two transforms are
compiled kernels instead (``winograd_input``, ``winograd_output``): ``V`` is built straight
from the slab, one (frame, sample, channel) plane per job, with no parity planes or junk
tiles, and ``Y`` is written straight into ``out``; the same operations in the same order.
Calls with many tiles (:data:`F4_FROM_TILES`) take F(4x4, 3x3) there (``winograd4_input``,
``winograd4_output``; ``B^T``, ``G`` (:data:`G4`) and ``A^T`` of the points 0, 1, -1, 2, -2
and infinity): 6x6 input tiles, 36 GEMMs of a quarter of the direct convolution's
multiplications in all.  The kernel transform ``U`` is one product ``(G kron G) @ g`` over
all 3x3 kernels either way.

The cost given to ``plan_tiles`` counts the slab, parity planes, row-transformed planes,
``V``, ``M``, the row-transformed ``M``, ``Y`` and ``U``.  Floating-point only (float16 is
computed in float32): the transforms divide by two (and six), so integer results would not
be exact.  F(2x2)'s float32 error matches unfold's (about 1e-7 of the magnitude scale
``max |x| conv |w|`` on ResNet-like data); F(4x4)'s, with larger transform entries, is about
1.4e-6 of it (see ``tests/test_conv_algorithms.py``), far within float32's 1e-4.

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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import algorithms, jit, threads, tiling
from .matmul import matmul

REFUSAL = (
    "winograd algorithm is for floating-point convolutions whose kernel is 3x3 over the last "
    "two dimensions, with stride 1 and dilation 1 there and no input dilation; use 'unfold' "
    "or 'direct'"
)

TILE_BYTES = 8 << 20
"""Workspace of one tile (at most the budget): small tiles keep the NumPy passes in cache."""

COMPILED_TILE_BYTES = 24 << 20
"""The same with the compiled transforms, which read and write each value once: bigger tiles
give the GEMMs more columns (2 threads: U-Net at 256x256 batch 8 1244 -> 1146 ms, batch 1
181 -> 172 ms against 8 MiB tiles)."""

F4_FROM_TILES = 64
"""4x4 output tiles (samples x frames x tiles per frame) from which the compiled path takes
F(4x4, 3x3): a quarter of the direct convolution's multiplications (F(2x2, 3x3): 4/9), and
36 transformed values per 16 outputs instead of 16 per 4, but a transformed kernel 36/9 of
the weights' size, computed every call.  2 threads, best of 5, F(4x4) / F(2x2) time:
(1,64,16,56,56) 3x3x3 0.76, (8,64,56,56) 0.79, (1,64,56,56) 0.71, (1,64,128,128) 0.76,
(1,64->32,256,256) 0.74, (8,128,28,28) 0.86, (1,128,64,64) 0.85; about even at 49-128 tiles
((1,128,28,28) 0.94, (8,256,14,14) 0.99) and slower below ((1,256,14,14), 16 tiles, 1.26)."""

SERIAL_TRANSFORMS = 1 << 62
"""The compiled transforms run serially with two threads however large (``jit.run``'s
``parallel_from``): between GEMMs, in parallel they wait for OpenBLAS's spinning worker
(ResNet-18's SGD step at batch 8, in-process A/B: 795 ms serial, 810 in parallel)."""

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

G4 = np.array(
    [
        [1 / 4, 0.0, 0.0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0.0, 0.0, 1.0],
    ]
)
"""The kernel transform of F(4x4, 3x3) (interpolation points 0, 1, -1, 2, -2 and infinity)."""


@dataclass(frozen=True)
class Variant:
    """One Winograd F(m x m, 3x3): output tiles of ``m x m``, input tiles of ``m + 2``."""

    m: int
    g: np.ndarray  #: the kernel transform ``G``, ``(m + 2, 3)``
    kernels: tuple[str, str]  #: the compiled input and output transforms
    constants: tuple[tuple[float, ...], tuple[float, ...]]  #: their constants, if any

    @property
    def positions(self) -> int:
        """Values per transformed tile: ``(m + 2)^2``, the number of GEMMs."""
        return (self.m + 2) ** 2


F2 = Variant(2, G, ("winograd_input", "winograd_output"), ((), ()))
F4 = Variant(4, G4, ("winograd4_input", "winograd4_output"), ((2.0, 4.0, 5.0), (2.0, 4.0, 8.0)))


class NonFinite(ArithmeticError):
    """The input holds an Inf or NaN (or sums past the dtype's range): the transforms would
    spread it over whole tiles, so the caller computes the call with another algorithm."""


def run(
    x: np.ndarray,
    w: np.ndarray,
    geom: tiling.ConvGeometry,
    groups: int,
    out: np.ndarray,
    budget: int,
) -> None:
    """Winograd ``conv_general`` into ``out``, tile by tile: F(4x4, 3x3) or F(2x2, 3x3)
    with the compiled transforms, F(2x2, 3x3) with NumPy's passes.  Raises
    :class:`NonFinite` (``out`` partly written) for an input holding an Inf or NaN: the
    compiled input transforms sum what they read on the way (no pass of its own), the NumPy
    path checks first."""
    if (
        len(geom.kernel_size) < 2
        or geom.kernel_size[-2:] != (3, 3)
        or geom.stride[-2:] != (1, 1)
        or geom.dilation[-2:] != (1, 1)
        or any(i != 1 for i in geom.input_dilation)
    ):
        raise ValueError(f"{REFUSAL} (got {geom})")
    dtype = tiling.compute_dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{REFUSAL}: the transforms are not exact for {x.dtype} (got {dtype})")
    size = tiling.itemsize(dtype)
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    taps = tiling.prod(geom.kernel_size[:-2])
    stacked = _frames_stack(geom, groups)

    compiled = jit.kernels() if out.dtype == dtype and out.flags.c_contiguous else None
    if compiled is None and not tiling.all_finite(x):  # the compiled transforms check it
        raise NonFinite("an Inf or NaN in the input")
    variant = F2
    if compiled is not None and not algorithms.precise():  # see algorithms.precise
        variant = _compiled_variant(n, geom.output_size)
    m, positions = variant.m, variant.positions

    def cost(nb: int, box: Sequence[int]) -> int:
        th, tw = (-(-b // m) for b in box[-2:])
        shape = tiling.slab_shape(geom, nb, (*box[:-2], m * th, m * tw))
        frames, outputs = tiling.prod(shape[2:-2]), tiling.prod(box[:-2])
        kernel = positions * o * cg * taps
        tiles = nb * (th * tw if compiled is not None else (th + 1) * (tw + 1))
        gathered = 0 if stacked else positions * outputs * taps * c * tiles
        # V and M: a transformed tile per input / output channel and frame
        transformed = positions * tiles * (c * frames + o * outputs)
        if compiled is not None:
            return size * (tiling.prod(shape) + transformed + gathered + kernel)
        # per input frame: parity planes (4) and rows (8), reused; per output frame: output
        # rows (8) and columns (4), reused
        work = (12 * c + 12 * o) * tiles + transformed
        return size * (tiling.prod(shape) + work + gathered + kernel)

    # calls running side by side (batch-parallel shares) divide the tile size among them
    aim = (TILE_BYTES if compiled is None else COMPILED_TILE_BYTES) // threads.concurrent_shares()
    limit = min(budget, cost(0, (0,) * len(geom.output_size)) + aim)  # the kernel + a tile
    nb, box = tiling.plan_tiles(n, geom.output_size, cost, limit)
    box = _aligned(box, geom.output_size, m)
    # U = G g G^T of every 3x3 kernel as one product (G kron G) (positions, 9) @ g (9, O * C/g
    # * T): the weights read once, in place (a transposed view, no copy), by BLAS in this
    # order (512 x 512 kernels: 1.3 ms; the engine's few-rows order would add a transposed
    # copy); then each output channel's row of U lists the T taps of the leading dimensions,
    # each with its C/g channels, as the stacked frames of V do
    kron = np.kron(variant.g, variant.g).astype(dtype)
    kernel = np.matmul(kron, w.astype(dtype, copy=False).reshape(-1, 9).T)
    kernel = kernel.reshape(positions, groups, og, cg, taps).swapaxes(3, 4)
    kernel = kernel.reshape(positions, groups, og, -1)
    buffers = [tiling.Scratch(dtype) for _ in range(8)]
    for tile in tiling.iter_tiles(n, geom.output_size, nb, box):
        _tile(x, kernel, geom, tile, groups, out, dtype, buffers, compiled, variant)


def _compiled_variant(batch: int, size: Sequence[int]) -> Variant:
    """F(4x4, 3x3) for calls of at least :data:`F4_FROM_TILES` 4x4 output tiles, else
    F(2x2, 3x3)."""
    frames = batch * tiling.prod(size[:-2])
    tiles = frames * tiling.prod(-(-s // 4) for s in size[-2:])
    return F4 if tiles >= F4_FROM_TILES else F2


def _aligned(box: Sequence[int], size: Sequence[int], m: int) -> tuple[int, ...]:
    """``box`` with its last two extents multiples of ``m`` where they are not the whole
    output: tiles start at multiples of ``m`` there (``ceil(b / m)`` tiles cost the same for
    every ``b`` up to the next multiple)."""
    last = (b if b == t else b + (-b) % m for b, t in zip(box[-2:], size[-2:], strict=True))
    return (*box[:-2], *last)


def _frames_stack(geom: tiling.ConvGeometry, groups: int) -> bool:
    """Whether the input frames every output frame reads lie in ``V`` as one matrix: its
    rows (tap, channel) evenly spaced and its first row evenly spaced from one output frame
    to the next (at most one leading dimension, and one tap, or one group and no dilation).
    Otherwise they are gathered into a buffer."""
    outer = geom.kernel_size[:-2]
    return len(outer) <= 1 and (tiling.prod(outer) == 1 or (groups == 1 and geom.dilation[0] == 1))


@functools.lru_cache(maxsize=1024)
def _frame_index(
    geom: tiling.ConvGeometry, start: tuple[int, ...], stop: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """For the leading output box ``[start, stop)``: the slab frame (flat over the slab's
    leading dimensions) of every (output frame, tap), ``(Q, T)``, and the flat output frame
    of each, ``(Q,)``."""
    rank = len(start)
    if rank == 0:
        return np.zeros((1, 1), np.intp), np.zeros(1, np.intp)
    box = tuple(b - a for a, b in zip(start, stop, strict=True))
    outer = geom.kernel_size[:-2]
    q = np.indices(box).reshape(rank, -1)
    t = np.indices(outer).reshape(rank, -1)
    stride = np.array(geom.stride[:-2])[:, None, None]
    dilation = np.array(geom.dilation[:-2])[:, None, None]
    read = q[:, :, None] * stride + t[:, None, :] * dilation
    slab = tuple((b - 1) * s + e for b, s, e in zip(box, geom.stride, geom.extent, strict=False))
    frames = np.ravel_multi_index(tuple(read), slab)
    written = np.ravel_multi_index(tuple(q + np.array(start)[:, None]), geom.output_size[:-2])
    return frames, written


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
    variant: Variant,
) -> None:
    """One tile: transforms and GEMMs over the ``m x m`` output tiles of ``tile``'s box (the
    compiled transforms when ``compiled``, the kernel module, is given; else F(2x2, 3x3)'s
    NumPy passes)."""
    slab_buf, phase_buf, rows_buf, v_buf, stack_buf, m_buf, s_buf, y_buf = buffers
    m, positions = variant.m, variant.positions
    th, tw = (-(-b // m) for b in tile.size[-2:])
    # the slab of the aligned box (m*th, m*tw): cells past the box are read only by outputs
    # that are thrown away
    stop = (*tile.stop[:-2], tile.start[-2] + m * th, tile.start[-1] + m * tw)
    d = tiling.extract_slab(x, geom, tiling.Tile(tile.batch, tile.start, stop), dtype, slab_buf)
    nb, c = d.shape[:2]
    # the leading dimensions as one axis of frames: (nb, C, F, m*th + 2, m*tw + 2)
    d = d.reshape(nb, c, -1, *d.shape[-2:])
    frames, written = _frame_index(geom, tile.start[:-2], tile.stop[:-2])
    width = th * tw if compiled is not None else (th + 1) * (tw + 1)
    v = v_buf.take((positions, d.shape[2], c, nb * width))
    forward, backward = (np.array(k, dtype) for k in variant.constants)
    if compiled is not None:
        transform = getattr(compiled, variant.kernels[0])
        v5 = v.reshape(positions, -1, c, nb, width)
        check = np.empty(d.shape[2] * nb * c, dtype)
        jit.run(transform, d, v5, th, tw, forward, check, parallel_from=SERIAL_TRANSFORMS)
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(np.add.reduce(check)):
                raise NonFinite("an Inf or NaN in the input")
    else:
        by_frame = v.reshape(4, 4, d.shape[2], -1)  # a view: v is a contiguous buffer
        for f in range(d.shape[2]):
            _input_passes(d[:, :, f], by_frame[:, :, f], th, tw, phase_buf, rows_buf)
    og = kernel.shape[2]
    product = m_buf.take((positions, len(frames), groups, og, nb * width))
    matmul(kernel[:, None], _stacked(v, frames, groups, stack_buf), out=product)
    if compiled is not None:
        target = out.reshape(*out.shape[:2], -1, *out.shape[-2:])
        product = product.reshape(positions, len(frames), groups * og, nb, width)
        # where the tiles go: (th, tw, first sample, first row, first column, box height,
        # box width)
        place = np.array((th, tw, tile.batch.start or 0, *tile.start[-2:], *tile.size[-2:]))
        transform = getattr(compiled, variant.kernels[1])
        jit.run(
            transform, product, target, written, place, backward, parallel_from=SERIAL_TRANSFORMS
        )
        return
    box = out[tile.out_index]
    for q, index in enumerate(np.ndindex(*tile.size[:-2])):
        _output_passes(product[:, q], box[(slice(None), slice(None), *index)], th, tw, s_buf, y_buf)


def _stacked(v: np.ndarray, frames: np.ndarray, groups: int, scratch: tiling.Scratch) -> np.ndarray:
    """``V`` ``(P, F, C, L)`` as the GEMMs' right operands ``(P, Q, groups, T * C/g, L)``:
    output frame ``q`` reads, per group, the rows (tap ``t``, channel) of input frames
    ``frames[q, t]``.  A strided view when those rows are evenly spaced, else a copy."""
    positions, count, c, length = v.shape
    nq, taps = frames.shape
    cg = c // groups
    step = v.strides[-1]
    rows_even = taps == 1 or (groups == 1 and bool(np.all(np.diff(frames, axis=1) == 1)))
    starts = frames[:, 0]
    frames_even = nq == 1 or bool(np.all(np.diff(starts) == starts[1] - starts[0]))
    if rows_even and frames_even:
        shift = int(starts[1] - starts[0]) if nq > 1 else 0
        return as_strided(
            v[:, starts[0] :],
            shape=(positions, nq, groups, taps * cg, length),
            strides=(v.strides[0], shift * v.strides[1], cg * v.strides[2], v.strides[2], step),
            writeable=False,
        )
    stack = scratch.take((positions, nq, groups, taps, cg, length))
    grouped = v.reshape(positions, count, groups, cg, length)
    for q in range(nq):
        for t in range(taps):
            np.copyto(stack[:, q, :, t], grouped[:, frames[q, t]])
    return stack.reshape(positions, nq, groups, taps * cg, length)


def _input_passes(
    d: np.ndarray,
    v: np.ndarray,
    th: int,
    tw: int,
    phase_buf: tiling.Scratch,
    rows_buf: tiling.Scratch,
) -> None:
    """The NumPy input transform of one frame ``d`` ``(nb, C, 2*th + 2, 2*tw + 2)`` into ``v``
    ``(4, 4, C * nb * (th + 1) * (tw + 1))``, every run flat over parity planes."""
    nb, c = d.shape[:2]
    row, plane = tw + 1, (th + 1) * (tw + 1)
    run = nb * c * plane  # one parity plane of every channel and sample, flat

    # parity planes ph[p, q] = d[:, :, p::2, q::2], channels first (C, nb, th + 1, tw + 1) so
    # that the GEMMs see (C, nb * plane) matrices, followed by a zeroed row (the flat reads
    # below run up to one row past the end)
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
    # columns: V[a, b] = (B^T d B)[a, b], laid out (C, nb, plane) for the GEMMs
    for a in range(4):
        e0, e1, e2, e3 = (r[(2 * a + k % 2) * run + k // 2 :][:run] for k in range(4))
        np.subtract(e0, e2, out=v[a, 0])
        np.add(e1, e2, out=v[a, 1])
        np.subtract(e2, e1, out=v[a, 2])
        np.subtract(e1, e3, out=v[a, 3])


def _output_passes(
    m: np.ndarray,
    box: np.ndarray,
    th: int,
    tw: int,
    s_buf: tiling.Scratch,
    y_buf: tiling.Scratch,
) -> None:
    """The NumPy output transform of one output frame: ``m`` ``(16, groups, O/g, nb * plane)``
    into ``box`` ``(nb, O, bh, bw)``."""
    nb, o, bh, bw = box.shape
    plane = (th + 1) * (tw + 1)
    m = m.reshape(4, 4, o, nb, plane)
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
    for i in range(2):
        for j in range(2):
            box[:, :, i::2, j::2] = grid[i, j, :, :, : (bh - i + 1) // 2, : (bw - j + 1) // 2]
