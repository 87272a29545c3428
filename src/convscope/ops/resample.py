"""Separable resampling on NumPy arrays: per-axis tap tables, their application and its adjoint
(no autograd, no argument validation).

Every interpolating mode of ``interpolate`` is separable: along one spatial axis, output ``i`` is
``sum_j weight[i, j] * x[index[i, j]]`` over a few *taps* ``j`` (2 for linear, 4 for cubic, a
window for antialiasing).  An :class:`AxisTaps` table holds those indices and weights; the
table builders reproduce PyTorch's arithmetic (the source-index rule, the border clamping, the
precision of each step) so the results agree with it to rounding.  :func:`resample` applies one
table per trailing axis, last axis first as PyTorch's kernels do, and
:func:`resample_backward` applies the :func:`transpose` of each table (the scatter-add of the
weights, turned into a gather) in reverse order: the exact adjoint of the forward.  ``uint8``
images take PyTorch's (and Pillow's) fixed-point path instead: :func:`fixed_point_taps` and
:func:`resample_fixed`.

>>> import numpy as np
>>> taps = linear_taps(2, 4, align_corners=True, dtype=np.float64)
>>> resample(np.array([0.0, 3.0]), [taps]).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .tiling import compute_dtype

#: PyTorch's bicubic convolution constant (Keys' ``a``); antialiasing uses -0.5 like Pillow.
CUBIC_A = -0.75


@dataclass(frozen=True)
class AxisTaps:
    """Output ``i`` along one axis is ``sum_j weight[i, j] * input[index[i, j]]``.

    ``index`` and ``weight`` are ``(out, taps)``; indices lie in ``[0, size)``.
    """

    index: np.ndarray
    weight: np.ndarray
    size: int
    precision: int = 0  # fixed-point tables (uint8): integer weights scaled by 2**precision

    @property
    def out(self) -> int:
        return self.index.shape[0]

    @property
    def identity(self) -> bool:
        """Whether the table copies its input unchanged (the axis can be skipped)."""
        return (
            self.index.shape[1] == 1
            and self.out == self.size
            and bool(np.all(self.weight == 1))
            and bool(np.array_equal(self.index[:, 0], np.arange(self.size)))
        )


def _identity(size: int, dtype: np.dtype) -> AxisTaps:
    return AxisTaps(np.arange(size)[:, None], np.ones((size, 1), dtype), size)


def source_scale(
    size: int, out: int, align_corners: bool, scale: float | None, dtype: np.dtype
) -> np.floating:
    """PyTorch's ratio of input to output coordinates, in ``dtype``'s precision.

    ``align_corners`` maps the corner centres onto each other: ``(size - 1) / (out - 1)``.
    Otherwise a user's scale factor wins (as ``1 / scale``), else ``size / out``.

    >>> float(source_scale(4, 6, False, 1.5, np.float64))
    0.6666666666666666
    """
    t = np.dtype(dtype).type
    if align_corners:
        return t(size - 1) / t(out - 1) if out > 1 else t(0)
    if scale is not None and scale > 0:
        return t(1.0 / scale)
    return t(size) / t(out)


def _source_index(
    size: int, out: int, align_corners: bool, scale: float | None, dtype: np.dtype, cubic: bool
) -> np.ndarray:
    """Fractional input coordinate of each output cell; linear modes clamp it at 0."""
    t = np.dtype(dtype).type
    ratio = source_scale(size, out, align_corners, scale, dtype)
    i = np.arange(out).astype(dtype)
    if align_corners:
        return ratio * i
    src = ratio * (i + t(0.5)) - t(0.5)
    return src if cubic else np.maximum(src, t(0))


def _guard(src: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer cell at or left of ``src`` (at most ``size - 1``) and the fraction past it."""
    # PyTorch floors in single precision (floorf) whatever the dtype
    cell = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), size - 1)
    return cell, np.clip(src - cell.astype(src.dtype), 0, 1)


def linear_taps(
    size: int,
    out: int,
    align_corners: bool = False,
    scale: float | None = None,
    dtype: np.dtype = np.float32,
) -> AxisTaps:
    """Two-tap table of linear interpolation (``'linear'``, ``'bilinear'``, ``'trilinear'``).

    An axis whose length does not change is copied, whatever the scale factor, as in PyTorch.

    >>> t = linear_taps(2, 4, dtype=np.float64)
    >>> t.index.tolist()
    [[0, 1], [0, 1], [0, 1], [1, 1]]
    >>> t.weight.tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.75, 0.25]]
    """
    storage, work = np.dtype(dtype), compute_dtype(dtype)
    if out == size:
        return _identity(size, storage)
    cell, frac = _guard(_source_index(size, out, align_corners, scale, work, cubic=False), size)
    index = np.stack([cell, cell + (cell < size - 1)], axis=1)
    weight = np.stack([work.type(1) - frac, frac], axis=1).astype(storage)
    return AxisTaps(index, weight, size)


def _cubic_near(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel for ``|x| <= 1``."""
    t = x.dtype.type
    return ((t(a + 2) * x - t(a + 3)) * x) * x + t(1)


def _cubic_far(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel for ``1 < |x| < 2``."""
    t = x.dtype.type
    return ((t(a) * x - t(5 * a)) * x + t(8 * a)) * x - t(4 * a)


def cubic_taps(
    size: int,
    out: int,
    align_corners: bool = False,
    scale: float | None = None,
    dtype: np.dtype = np.float32,
) -> AxisTaps:
    """Four-tap table of bicubic interpolation (``a = -0.75``); taps past a border repeat the
    border cell, as PyTorch's kernel clamps them.

    >>> t = cubic_taps(4, 2, dtype=np.float64)
    >>> t.index.tolist()
    [[0, 0, 1, 2], [1, 2, 3, 3]]
    >>> t.weight[0].tolist()
    [-0.09375, 0.59375, 0.59375, -0.09375]
    """
    storage, work = np.dtype(dtype), compute_dtype(dtype)
    t = work.type
    cell, frac = _guard(_source_index(size, out, align_corners, scale, work, cubic=True), size)
    rest = t(1) - frac
    weight = np.stack(
        [
            _cubic_far(frac + t(1), CUBIC_A),
            _cubic_near(frac, CUBIC_A),
            _cubic_near(rest, CUBIC_A),
            _cubic_far(rest + t(1), CUBIC_A),
        ],
        axis=1,
    ).astype(storage)
    index = np.clip(cell[:, None] + np.arange(-1, 3), 0, size - 1)
    return AxisTaps(index, weight, size)


# ------------------------------------------------------------------ antialiasing filters
def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, 1 - x, 0).astype(x.dtype)


def _keys_cubic(a: float) -> Callable[[np.ndarray], np.ndarray]:
    def kernel(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        near, far = _cubic_near(x, a), _cubic_far(x, a)
        return np.where(x < 1, near, np.where(x < 2, far, 0)).astype(x.dtype)

    return kernel


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0).astype(x.dtype)


#: Each antialiasing filter with its support (in input cells when not downsampling).
FILTERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "linear": (_triangle, 1.0),
    "cubic": (_keys_cubic(-0.5), 2.0),
    "lanczos": (_lanczos3, 3.0),
}


def filter_taps(
    size: int,
    out: int,
    kind: str,
    align_corners: bool = False,
    scale: float | None = None,
    dtype: np.dtype = np.float32,
) -> AxisTaps:
    """Antialiased table (Pillow's resampling, ``antialias=True``): output ``i`` averages the
    input under filter ``kind`` (``'linear'``, ``'cubic'``, ``'lanczos'``) centred on its
    source position, stretched by the downsampling ratio, with weights normalised to sum 1.
    An axis whose length does not change is copied (PyTorch's separable kernel skips it).

    >>> t = filter_taps(4, 2, "linear", dtype=np.float64)
    >>> t.index.tolist()
    [[0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]
    >>> (t.weight * 7).round(12).tolist()
    [[3.0, 3.0, 1.0, 0.0, 0.0], [1.0, 3.0, 3.0, 0.0, 0.0]]
    """
    dtype = np.dtype(dtype)
    if out == size:
        return _identity(size, dtype)
    t = dtype.type
    fn, radius = FILTERS[kind]
    ratio = source_scale(size, out, align_corners, scale, dtype)
    support = t(radius * ratio) if ratio >= 1 else t(radius)
    width = math.ceil(support) * 2 + 1
    invscale = t(1.0 / ratio) if ratio >= 1 else t(1)
    center = (ratio * (np.arange(out) + 0.5)).astype(dtype)
    low = np.maximum((center - support + 0.5).astype(np.int64), 0)
    count = np.clip(np.minimum((center + support + 0.5).astype(np.int64), size) - low, 0, width)
    j = np.arange(width)
    index = low[:, None] + j
    offset = (index.astype(dtype) - center[:, None] + 0.5) * invscale
    weight = np.where(j < count[:, None], fn(offset.astype(dtype)), t(0))
    total = weight.sum(axis=1, keepdims=True)
    weight = np.divide(weight, total, out=weight, where=total != 0)
    return AxisTaps(np.minimum(index, size - 1), weight.astype(dtype), size)


# ------------------------------------------------------------------ apply and adjoint
def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return values.reshape([-1 if a == axis else 1 for a in range(ndim)])


def _apply_axis(x: np.ndarray, taps: AxisTaps, axis: int) -> np.ndarray:
    work = x.dtype
    out = None
    for index, weight in zip(taps.index.T, taps.weight.T, strict=True):
        if out is not None and not weight.any():
            continue
        cells = np.take(x, index, axis=axis)
        cells *= _along(weight.astype(work), axis, x.ndim)
        if out is None:
            out = cells
        else:
            out += cells
    return out


def resample(x: np.ndarray, taps: Sequence[AxisTaps]) -> np.ndarray:
    """Apply one table per trailing axis of ``x`` (floating point; the last axis first).

    >>> resample(np.arange(3.0), [cubic_taps(3, 3, dtype=np.float64)]).tolist()
    [0.0, 1.0, 2.0]
    """
    first = x.ndim - len(taps)
    out = x.astype(compute_dtype(x.dtype), copy=False)
    for axis in reversed(range(len(taps))):
        if not taps[axis].identity:
            out = _apply_axis(out, taps[axis], first + axis)
    return x.copy() if out is x else out.astype(x.dtype, copy=False)


def transpose(taps: AxisTaps) -> AxisTaps:
    """The table of the adjoint map: for each input cell, the outputs that read it and with
    what weight (rows padded with zero weights to the longest list).

    >>> t = transpose(linear_taps(2, 4, align_corners=True, dtype=np.float64))
    >>> t.index.tolist(), (t.weight * 3).round(12).tolist()
    ([[0, 1, 2], [1, 2, 3]], [[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    """
    used = taps.weight != 0
    cells, rows = taps.index[used], np.nonzero(used)[0]
    order = np.lexsort((rows, cells))
    cells, rows, weights = cells[order], rows[order], taps.weight[used][order]
    counts = np.bincount(cells, minlength=taps.size)
    slot = np.arange(cells.size) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.zeros((taps.size, max(int(counts.max(initial=0)), 1)), np.int64)
    weight = np.zeros(index.shape, taps.weight.dtype)
    index[cells, slot], weight[cells, slot] = rows, weights
    return AxisTaps(index, weight, taps.out)


def resample_backward(
    grad: np.ndarray, taps: Sequence[AxisTaps], input_shape: Sequence[int]
) -> np.ndarray:
    """Adjoint of :func:`resample`: each output gradient, weighted, added to its input cells.

    >>> resample_backward(np.ones(4), [linear_taps(2, 4, True, dtype=np.float64)], (2,)).tolist()
    [2.0, 2.0]
    """
    first = grad.ndim - len(taps)
    out = grad.astype(compute_dtype(grad.dtype), copy=False)
    for axis in range(len(taps)):
        if not taps[axis].identity:
            out = _apply_axis(out, transpose(taps[axis]), first + axis)
    return out.astype(grad.dtype, copy=False).reshape(input_shape)


# ------------------------------------------------------------------ uint8 (fixed point)
def _border_merged(
    size: int, out: int, kind: str, align_corners: bool, scale: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """PyTorch's uint8 weights without antialiasing: the float tables' taps, but taps past a
    border folded into the border cell; also the running maximum PyTorch tracks."""
    taps = 2 if kind == "linear" else 4
    half = taps // 2
    fn = _triangle if kind == "linear" else _keys_cubic(CUBIC_A)
    src = _source_index(size, out, align_corners, scale, np.float64, cubic=taps > 2)
    cell, frac = _guard(src, size)
    first = cell - half + 1
    low = np.maximum(first, 0)
    count = np.clip(np.minimum(first + taps, size) - low, 0, taps)
    weight = np.zeros((out, taps))
    rows, slot, peak = np.arange(out), np.zeros(out, np.int64), 0.0
    for j in range(taps):
        cells = first + j
        slot = np.where(cells <= 0, 0, np.where(cells >= size - 1, count - 1, slot))
        weight[rows, slot] += fn(np.float64(j + 1 - half) - frac)
        peak = max(peak, float(weight[rows, slot].max(initial=0.0)))
        slot = slot + 1
    return np.minimum(low[:, None] + np.arange(taps), size - 1), weight, peak


def fixed_point_taps(
    size: int,
    out: int,
    kind: str,
    antialias: bool,
    align_corners: bool = False,
    scale: float | None = None,
) -> AxisTaps:
    """Integer table of PyTorch's uint8 resampling: double weights rounded to ``int16`` at the
    largest precision that keeps the biggest weight below ``2**15``.

    >>> t = fixed_point_taps(2, 4, "linear", antialias=False)
    >>> t.weight.tolist(), t.precision
    ([[16384, 0], [12288, 4096], [4096, 12288], [16384, 0]], 14)
    """
    if antialias:
        taps = filter_taps(size, out, kind, align_corners, scale, np.float64)
        index, weight = taps.index, taps.weight
        peak = float(weight.max(initial=0.0))
    else:
        index, weight, peak = _border_merged(size, out, kind, align_corners, scale)
    precision = 0
    while precision < 22 and int(0.5 + peak * (1 << (precision + 1))) < 1 << 15:
        precision += 1
    scaled = weight * (1 << precision)
    rounded = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return AxisTaps(index, rounded.astype(np.int64), size, precision)


def resample_fixed(x: np.ndarray, taps: Sequence[AxisTaps]) -> np.ndarray:
    """Apply fixed-point tables to a ``uint8`` array, last axis first, rounding and saturating
    to ``uint8`` after each axis (axes whose length does not change are skipped).

    >>> t = fixed_point_taps(2, 4, "linear", antialias=False)
    >>> resample_fixed(np.array([0, 255], np.uint8), [t]).tolist()
    [0, 64, 191, 255]
    """
    first = x.ndim - len(taps)
    out = x
    for axis in reversed(range(len(taps))):
        table = taps[axis]
        if table.out == table.size:
            continue
        where = first + axis
        total = np.full((), 1 << (table.precision - 1), np.int64)
        for index, weight in zip(table.index.T, table.weight.T, strict=True):
            if weight.any():
                cells = np.take(out, index, axis=where).astype(np.int64)
                total = total + cells * _along(weight, where, x.ndim)
        out = np.clip(total >> table.precision, 0, 255).astype(np.uint8)
    return out if out is not x else x.copy()
