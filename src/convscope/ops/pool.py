"""Pooling on NumPy arrays: max and average over sliding windows, per-axis segment means, and
the adjoint of each (no autograd, no argument validation).

Sliding windows reuse the convolution's machinery: a :class:`~convscope.ops.tiling.ConvGeometry`
describes them, :func:`~convscope.ops.tiling.extract_slab` gives the zero-padded input region a
tile of outputs reads, and the work runs tile by tile within the workspace budget.  A kernel
offset at a time, a strided view of the slab holds that offset's cell of every window.  Padding
never wins a maximum: each offset comes with the mask of output positions whose cell lies
inside the input, and the flat index of that cell (PyTorch's ``return_indices``).

Adaptive average pooling and nearest-neighbour resampling are *segment means*: along each
spatial axis, output ``i`` is the mean of the input cells ``[start_i, start_i + length_i)``.

>>> import numpy as np
>>> from convscope.ops.pool import max_pool, pool_geometry
>>> geom = pool_geometry((1, 1, 5), (2,), (2,), (0,), (1,), ceil_mode=True)
>>> values, indices = max_pool(np.array([[[1.0, 5.0, 2.0, 0.0, 3.0]]]), geom)
>>> values.tolist(), indices.tolist()
([[[5.0, 2.0, 3.0]]], [[[1, 2, 4]]])
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..geometry import receptive_extent
from . import tiling
from .workspace import get_workspace_budget

Segments = Sequence[tuple[np.ndarray, np.ndarray]]


def output_size(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[int, ...]:
    """PyTorch's pooling output sizes (may be ``<= 0``; callers reject those).

    The convolution's ``(padded - extent) // stride + 1``; ``ceil_mode`` rounds up instead,
    but the last window must still start inside the input or its left padding.

    >>> output_size((5,), (2,), (2,), (0,), (1,), ceil_mode=True)
    (3,)
    """
    out = []
    for h, e, s, p in zip(size, receptive_extent(kernel, dilation), stride, padding, strict=True):
        o = (h + 2 * p - e + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= h + p:
            o -= 1
        out.append(o)
    return tuple(out)


def pool_geometry(
    input_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tiling.ConvGeometry:
    """The windows of a pooling of a batched ``(N, C, *S)`` input, as a convolution geometry.

    >>> pool_geometry((1, 1, 6, 6), (3, 3), (2, 2), (1, 1), (1, 1), False).output_size
    (3, 3)
    """
    n = len(kernel)
    return tiling.ConvGeometry(
        input_shape=tuple(input_shape),
        kernel_size=tuple(kernel),
        stride=tuple(stride),
        pads=tuple((p, p) for p in padding),
        dilation=tuple(dilation),
        input_dilation=(1,) * n,
        output_size=output_size(input_shape[2:], kernel, stride, padding, dilation, ceil_mode),
    )


def _windows(
    slab: np.ndarray, geom: tiling.ConvGeometry, box: Sequence[int], writeable: bool = False
) -> np.ndarray:
    """View ``(nb, C, *box, *K)`` of the windows of ``slab`` (no copy)."""
    sn, sc, *sx = slab.strides
    return as_strided(
        slab,
        shape=(*slab.shape[:2], *box, *geom.kernel_size),
        strides=(
            sn,
            sc,
            *(st * s for st, s in zip(sx, geom.stride, strict=True)),
            *(st * d for st, d in zip(sx, geom.dilation, strict=True)),
        ),
        writeable=writeable,
    )


def _grid(per_dim: Sequence[np.ndarray]) -> list[np.ndarray]:
    """1-D arrays along the spatial axes, shaped to broadcast against ``(N, C, *box)``."""
    n = len(per_dim)
    return [
        a.reshape((1, 1, *(-1 if j == i else 1 for j in range(n)))) for i, a in enumerate(per_dim)
    ]


def _starts(geom: tiling.ConvGeometry, tile: tiling.Tile) -> list[np.ndarray]:
    """Input coordinate of the first (padded) cell of each window of ``tile``, per dimension."""
    return [
        np.arange(a, b) * s - before
        for a, b, s, (before, _) in zip(tile.start, tile.stop, geom.stride, geom.pads, strict=True)
    ]


def _flat(coords: Sequence[np.ndarray], size: Sequence[int]) -> np.ndarray:
    """Flat index into the spatial dimensions of per-dimension coordinates (broadcast)."""
    strides = [math.prod(size[i + 1 :]) for i in range(len(size))]
    return sum((c * st for c, st in zip(_grid(coords), strides, strict=True)), np.int64(0))


def _offsets(
    geom: tiling.ConvGeometry, tile: tiling.Tile
) -> Iterator[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """Each kernel offset with the flat input index of its cell in every window of ``tile`` and
    the mask of windows where that cell is inside the input (not padding)."""
    size = geom.input_shape[2:]
    starts = _starts(geom, tile)
    for offset in itertools.product(*(range(k) for k in geom.kernel_size)):
        coords = [s + k * d for s, k, d in zip(starts, offset, geom.dilation, strict=True)]
        inside = [(c >= 0) & (c < h) for c, h in zip(coords, size, strict=True)]
        yield offset, _flat(coords, size), functools.reduce(np.logical_and, _grid(inside))


def _first_cells(geom: tiling.ConvGeometry, tile: tiling.Tile) -> np.ndarray:
    """Flat index of the first non-padding cell of each window (PyTorch's initial argmax)."""
    coords = [
        np.where(s < 0, s + (-s + d - 1) // d * d, s)
        for s, d in zip(_starts(geom, tile), geom.dilation, strict=True)
    ]
    return _flat(coords, geom.input_shape[2:])


def _tiles(
    geom: tiling.ConvGeometry, dtype: np.dtype, budget: int | None, temporaries: int
) -> Iterator[tiling.Tile]:
    """Tiles whose slab plus ``temporaries`` output-sized arrays fit the budget."""
    n, c = geom.input_shape[:2]
    size = max(tiling.itemsize(dtype), 8)

    def cost(nb: int, box: Sequence[int]) -> int:
        slab = tiling.prod(tiling.slab_shape(geom, nb, box))
        return size * (slab + temporaries * nb * c * tiling.prod(box))

    limit = get_workspace_budget() if budget is None else budget
    nb, box = tiling.plan_tiles(n, geom.output_size, cost, limit)
    return tiling.iter_tiles(n, geom.output_size, nb, box)


def _lowest(dtype: np.dtype) -> float | int:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def max_pool(
    x: np.ndarray, geom: tiling.ConvGeometry, budget: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of each window and the flat spatial index of the cell it came from.

    Ties keep the first maximum in window order; NaN wins (the last NaN), as in PyTorch.
    """
    dtype = tiling.compute_dtype(x.dtype)
    shape = (*x.shape[:2], *geom.output_size)
    values, indices = np.empty(shape, x.dtype), np.empty(shape, np.int64)
    scratch = tiling.Scratch(dtype)
    for tile in _tiles(geom, dtype, budget, temporaries=4):
        slab = tiling.extract_slab(x, geom, tile, dtype, scratch)
        windows = _windows(slab, geom, tile.size)
        best = np.full(windows.shape[: 2 + len(tile.size)], _lowest(dtype), dtype)
        argmax = np.broadcast_to(_first_cells(geom, tile), best.shape).copy()
        for offset, cells, inside in _offsets(geom, tile):
            value = windows[(..., *offset)]
            take = inside & ((value > best) | (value != value))  # value != value: NaN
            np.copyto(best, value, where=take)
            np.copyto(argmax, cells, where=take)
        values[tile.out_index] = best
        indices[tile.out_index] = argmax
    return values, indices


def max_pool_backward(
    grad: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Adjoint of :func:`max_pool`: each output gradient goes to the cell its maximum came from."""
    rows, cells = math.prod(input_shape[:2]), math.prod(input_shape[2:])
    out = np.zeros((rows, cells), grad.dtype)
    flat = indices.reshape(rows, -1)
    row = np.broadcast_to(np.arange(rows)[:, None], flat.shape)
    inside = flat < cells  # a window of padding only points past the input (PyTorch's index)
    np.add.at(out, (row[inside], flat[inside]), grad.reshape(rows, -1)[inside])
    return out.reshape(input_shape)


def _divisors(
    geom: tiling.ConvGeometry,
    tile: tiling.Tile,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray | int:
    """PyTorch's divisor of each window: its cells inside the padded input, or inside the
    input alone (``count_include_pad=False``), or ``divisor_override``."""
    if divisor_override is not None:
        return divisor_override
    counts = []
    for start, k, h, (before, _) in zip(
        _starts(geom, tile), geom.kernel_size, geom.input_shape[2:], geom.pads, strict=True
    ):
        end = np.minimum(start + k, h + before)
        counts.append(
            end - start if count_include_pad else np.minimum(end, h) - np.maximum(start, 0)
        )
    return math.prod(_grid(counts))


def _divide(total: np.ndarray, divisor: np.ndarray | int) -> np.ndarray:
    """``total / divisor``; integers divide with truncation toward zero, as C++ does."""
    if total.dtype.kind == "f":
        return total / np.asarray(divisor, total.dtype)
    sign = np.sign(total) * np.sign(divisor)
    return sign * (np.abs(total) // np.abs(divisor))


def avg_pool(
    x: np.ndarray,
    geom: tiling.ConvGeometry,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    budget: int | None = None,
) -> np.ndarray:
    """Mean of each window (sum of its input cells over :func:`_divisors`)."""
    dtype = tiling.compute_dtype(x.dtype) if x.dtype.kind == "f" else np.dtype(np.int64)
    out = np.empty((*x.shape[:2], *geom.output_size), x.dtype)
    scratch = tiling.Scratch(dtype)
    for tile in _tiles(geom, dtype, budget, temporaries=2):
        windows = _windows(tiling.extract_slab(x, geom, tile, dtype, scratch), geom, tile.size)
        total = np.zeros(windows.shape[: 2 + len(tile.size)], dtype)
        for offset in itertools.product(*(range(k) for k in geom.kernel_size)):
            total += windows[(..., *offset)]
        out[tile.out_index] = _divide(
            total, _divisors(geom, tile, count_include_pad, divisor_override)
        )
    return out


def avg_pool_backward(
    grad: np.ndarray,
    geom: tiling.ConvGeometry,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Adjoint of :func:`avg_pool`: each output gradient, divided, spread over its window."""
    whole = tiling.Tile(slice(None), (0,) * len(geom.output_size), geom.output_size)
    scaled = grad / np.asarray(
        _divisors(geom, whole, count_include_pad, divisor_override), grad.dtype
    )
    size = geom.input_shape[2:]
    read = [hi for _, hi in geom.region(whole.start, whole.stop)]
    lengths = [max(r, before + h) for r, (before, _), h in zip(read, geom.pads, size, strict=True)]
    padded = np.zeros((*grad.shape[:2], *lengths), grad.dtype)
    windows = _windows(padded, geom, geom.output_size, writeable=True)
    for offset in itertools.product(*(range(k) for k in geom.kernel_size)):
        windows[(..., *offset)] += scaled
    crop = tuple(slice(before, before + h) for (before, _), h in zip(geom.pads, size, strict=True))
    return padded[(slice(None), slice(None), *crop)]


# ---------------------------------------------------------------- segment means
def adaptive_segments(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows: ``[floor(i*size/out), ceil((i+1)*size/out))``.

    >>> [a.tolist() for a in adaptive_segments(5, 3)]
    [[0, 1, 3], [2, 3, 2]]
    """
    i = np.arange(out, dtype=np.int64)
    starts = i * size // out
    ends = -(-(i + 1) * size // out)
    return starts, ends - starts


def nearest_segments(
    size: int, out: int, scale: float | None = None, exact: bool = False, shortcuts: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Source cell of each output cell of nearest-neighbour resampling, as PyTorch computes it.

    ``scale`` is the user's scale factor (PyTorch then uses ``1/scale``), else ``size/out``;
    the arithmetic is float32 like PyTorch's kernel.  ``exact`` samples cell centres
    (``'nearest-exact'``).  ``shortcuts`` mirrors PyTorch's 2-D ``'nearest'`` kernel, which
    copies when ``out == size`` and halves indices when ``out == 2*size`` whatever the scale.

    >>> nearest_segments(3, 6)[0].tolist()
    [0, 0, 1, 1, 2, 2]
    """
    i = np.arange(out, dtype=np.int64)
    ratio = np.float32(1.0 / scale) if scale else np.float32(size) / np.float32(out)
    if exact:
        source = np.floor(((i + 0.5) * np.float64(ratio)).astype(np.float32))
    elif shortcuts and out in (size, 2 * size):
        source = i if out == size else i >> 1
    else:
        source = np.floor(i.astype(np.float32) * ratio)
    return np.minimum(source.astype(np.int64), size - 1), np.ones(out, np.int64)


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return values.reshape([-1 if a == axis else 1 for a in range(ndim)])


def segment_means(x: np.ndarray, segments: Segments) -> np.ndarray:
    """Mean over ``[start, start + length)`` along each trailing axis (one segment list per axis).

    >>> starts, lengths = adaptive_segments(4, 2)
    >>> segment_means(np.arange(4.0), [(starts, lengths)]).tolist()
    [0.5, 2.5]
    """
    first = x.ndim - len(segments)
    dtype = tiling.compute_dtype(x.dtype) if x.dtype.kind == "f" else x.dtype
    out = x
    for axis, (starts, lengths) in enumerate(segments, start=first):
        size = out.shape[axis]
        total = np.take(out, starts, axis=axis).astype(dtype)
        for j in range(1, int(lengths.max(initial=1))):
            inside = _along(j < lengths, axis, x.ndim)
            cells = np.take(out, np.minimum(starts + j, size - 1), axis=axis)
            total += np.where(inside, cells, 0)
        out = total if lengths.max(initial=1) == 1 else total / _along(lengths, axis, x.ndim)
    return out.astype(x.dtype, copy=False)


def segment_means_backward(
    grad: np.ndarray, segments: Segments, input_shape: Sequence[int]
) -> np.ndarray:
    """Adjoint of :func:`segment_means`: each gradient, divided, spread over its segment."""
    first = grad.ndim - len(segments)
    for axis, (starts, lengths) in enumerate(segments, start=first):
        shape = list(grad.shape)
        shape[axis] = input_shape[axis]
        out = np.zeros(shape, grad.dtype)
        scaled = np.moveaxis(grad / _along(lengths, axis, grad.ndim).astype(grad.dtype), axis, -1)
        target = np.moveaxis(out, axis, -1)
        for j in range(int(lengths.max(initial=1))):
            inside = j < lengths
            np.add.at(target, (..., starts[inside] + j), scaled[..., inside])
        grad = out
    return grad
