"""Which input cells an output block reads: stride-aligned blocks and their halos, per axis.

Every function works on one spatial axis; a block of outputs ``[j0, j1)`` maps to a window
``[a, b)`` of the layer's input.  Output blocks are chosen first and the windows derived from
them, so no output cell is computed twice or missed whatever the input's chunks are.

>>> boundaries((4, 4, 2))
[0, 4, 8, 10]
>>> output_chunks((4, 4, 2), 5, lambda b: b // 2)
(2, 2, 1)
>>> valid_window(2, 4, stride=2, extent=3)
(4, 9)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence


def boundaries(chunks: Sequence[int]) -> list[int]:
    """Cumulative chunk edges along an axis, from 0 to the axis length."""
    edges = [0]
    for size in chunks:
        edges.append(edges[-1] + int(size))
    return edges


def output_chunks(
    in_chunks: Sequence[int], out_size: int, to_output: Callable[[int], int]
) -> tuple[int, ...]:
    """Output chunk sizes whose edges follow the input's inner edges mapped by ``to_output``."""
    inner = {min(out_size, max(0, to_output(edge))) for edge in boundaries(in_chunks)[1:-1]}
    cuts = sorted(inner | {0, out_size})
    sizes = tuple(b - a for a, b in itertools.pairwise(cuts))
    return sizes or (0,)


def valid_window(j0: int, j1: int, stride: int, extent: int) -> tuple[int, int]:
    """Input window of outputs ``[j0, j1)`` of an unpadded ('valid') sliding window.

    The window starts on the stride grid (``j0 * stride``) and ends where the last window
    ends: ``(j1 - 1) * stride + extent``, so its halo is ``extent - stride`` cells.
    """
    return j0 * stride, (j1 - 1) * stride + extent


def padded_window(
    j0: int, j1: int, size: int, stride: int, padding: int, extent: int
) -> tuple[int, int, int]:
    """Window ``[a, b)`` and first local output of outputs ``[j0, j1)`` of a layer that pads
    ``padding`` cells on both sides itself (pooling), run unchanged on the window.

    ``a`` is a multiple of the stride (0 at the true start), so the layer's own windows on
    ``x[a:b]`` are the global ones shifted by ``a / stride`` outputs; the outputs it computes
    next to a chunk edge (where it would pad) are cropped: the kept ones start at the returned
    index.  The window is widened, if it can be, to at least ``extent`` and ``padding + 1``
    cells (what the layer needs of any input).
    """
    a = max(0, j0 * stride - padding)
    a -= a % stride
    b = min(size, (j1 - 1) * stride - padding + extent)
    least = min(size, max(extent, padding + 1))
    if b - a < least:
        b = min(size, a + least)
    while b - a < least and a > 0:
        a = max(0, a - stride)
    return a, b, j0 - a // stride


def transpose_window(
    j0: int, j1: int, size: int, stride: int, padding: int, span: int
) -> tuple[int, int, int]:
    """Inputs ``[i0, i1)`` feeding outputs ``[j0, j1)`` of a transposed convolution, and the
    global output index of the window's first local output (``i0 * stride - padding``).

    Output ``j`` receives input ``i`` when ``0 <= j + padding - i * stride < span`` with
    ``span = dilation * (kernel - 1) + 1``.  ``i1 <= i0`` means no input reaches the block.
    """
    i0 = max(0, -(-(j0 + padding - span + 1) // stride))
    i1 = min(size, (j1 - 1 + padding) // stride + 1)
    return i0, max(i0, i1), i0 * stride - padding


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """PyTorch's pooling output length (with its ceil-mode rule: the last window must start
    inside the input or its left padding)."""
    extent = dilation * (kernel - 1) + 1
    span = size + 2 * padding - extent
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out
