"""Array kernels of the normalisation layers (no autograd).

Every layer sees its input as a C-contiguous ``(A, C, S)`` array: statistics are first taken
per *row* ``(a, c)`` over the ``S`` trailing elements, then merged into the layer's units
(BatchNorm merges over ``A``, GroupNorm over the channels of a group, InstanceNorm and
LayerNorm use the rows as they are).  Elementwise work is done block by block, each block small
enough for its temporaries to stay in cache, so a pass over the data reads memory once.

Accuracy: each row is summed with NumPy's pairwise summation around the row's own mean (two
passes over a cached block), rows are merged in float64 (Chan's formula), so a large mean (say
``100 + randn``) costs no digits; the layers subtract a centre rounded to the input dtype, which
is exact for values near it, and fold the rounding of that centre into the per-row constants.
With numba, C-contiguous rows are summed by compiled kernels in float64 instead (one parallel
job per row) and the affine step runs in one compiled pass that rounds as the NumPy passes do.

>>> import numpy as np
>>> x = np.array([[[1.0, 2.0, 3.0, 6.0]]])
>>> mean, m2 = moments(x)
>>> mean.tolist(), m2.tolist()
([[3.0]], [[14.0]])
>>> affine(x, np.array([[2.0]]), np.array([[0.5]]), centre=np.array([[3.0]])).tolist()
[[[-3.5, -1.5, 0.5, 6.5]]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import elementwise, jit
from .threads import get_num_threads

#: elements per block: a block and its temporaries stay in the cache between passes
BLOCK = 1 << 16

Index = tuple[slice, slice]


def blocks(shape: tuple[int, int, int]) -> Iterator[Index]:
    """``(rows of A, rows of C)`` index pairs covering an ``(A, C, S)`` array in blocks of about
    :data:`BLOCK` elements (whole ``S`` rows always).

    >>> [(a.start, a.stop, c.start, c.stop) for a, c in blocks((2, 3, 40000))]
    [(0, 1, 0, 1), (0, 1, 1, 2), (0, 1, 2, 3), (1, 2, 0, 1), (1, 2, 1, 2), (1, 2, 2, 3)]
    """
    a_count, c_count, s_count = shape
    plane = c_count * s_count
    if plane <= BLOCK:
        step = max(1, BLOCK // max(plane, 1))
        for a in range(0, a_count, step):
            yield slice(a, min(a + step, a_count)), slice(0, c_count)
        return
    step = max(1, BLOCK // max(s_count, 1))
    for a in range(a_count):
        for c in range(0, c_count, step):
            yield slice(a, a + 1), slice(c, min(c + step, c_count))


def rows(values: np.ndarray, index: Index) -> np.ndarray:
    """The block of per-row constants ``values`` at ``index``, shaped to broadcast against the
    ``(a, c, S)`` block: ``values`` is ``(C,)`` (one per channel) or ``(A, C)`` (one per row).
    """
    ia, ic = index
    if values.ndim == 1:
        return values[ic, None]
    return values[ia, ic, None]


class _Scratch:
    """One reusable buffer for a block's temporary (blocks have at most the first's size)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.buffer = dtype, None

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        if self.buffer is None or self.buffer.size < size:
            self.buffer = np.empty(size, self.dtype)
        return self.buffer[:size].reshape(shape)


def _row_kernels(g: np.ndarray, x: np.ndarray) -> object | None:
    """The compiled row kernels (:mod:`convscope.ops._jit_norm`) when numba works and ``g``
    and ``x`` are C-contiguous float32/float64 arrays of one dtype, else ``None`` (NumPy).
    Measured on BatchNorm2d's backward at batch 8, one thread: 24.6 -> 18.7 ms for 64 x 112 x
    112 planes, 7.1 -> 3.3 ms for 64 x 56 x 56, 3.0 -> 1.7 ms for 128 x 28 x 28 (torch 20.7,
    2.9 and 0.9 ms)."""
    if jit.kernels() is None or x.dtype not in (np.float32, np.float64) or g.dtype != x.dtype:
        return None
    if not (g.flags.c_contiguous and x.flags.c_contiguous):
        return None
    from . import _jit_norm

    return _jit_norm


def _forward_kernels(*arrays: np.ndarray) -> object | None:
    """The compiled forward kernels (:mod:`convscope.ops._jit_norm_forward`) when numba works
    and ``arrays`` are C-contiguous float32/float64 arrays of one dtype, else ``None``.
    Measured at one thread (torch in brackets): LayerNorm(96) on (8, 56, 56, 96) 15.1 -> 1.9
    ms (1.5-1.9), GroupNorm(512, 512) on (1, 512, 3200) 3.6-5.7 -> 1.05 ms (0.7-1.1), a
    training-mode BatchNorm2d on (8, 64, 56, 56) 3.4-4.8 -> 1.5 ms (2.7)."""
    dtype = arrays[0].dtype
    if jit.kernels() is None or dtype not in (np.float32, np.float64):
        return None
    if any(a.dtype != dtype or not a.flags.c_contiguous for a in arrays):
        return None
    from . import _jit_norm_forward

    return _jit_norm_forward


def _per_row(values: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Per-channel ``(C,)`` or per-row ``(A, C)`` constants as one flat ``(A * C,)`` array."""
    if shape[0] == 1 and values.shape == shape[1:2]:  # one sample: as they are (3 us less)
        return np.ascontiguousarray(values, dtype=dtype)
    full = np.broadcast_to(values, shape[:2])
    return np.ascontiguousarray(full, dtype=dtype).reshape(-1)


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and sum of squared deviations of an ``(A, C, S)`` array, both float64
    ``(A, C)``: ``mean[a, c] = x[a, c].mean()``, ``m2[a, c] = ((x[a, c] - mean) ** 2).sum()``.

    >>> m, m2 = moments(np.array([[[100.0, 101.0], [1.0, 1.0]]], np.float32))
    >>> m.tolist(), m2.tolist()
    ([[100.5, 1.0]], [[0.5, 0.0]])
    """
    count = x.shape[2]
    mean = np.zeros(x.shape[:2])
    m2 = np.zeros(x.shape[:2])
    if count == 0 or x.size == 0:
        mean[...] = np.nan
        return mean, m2
    compiled = _forward_kernels(x)
    if compiled is not None:
        jit.run(compiled.row_moments, x.reshape(-1, count), mean.reshape(-1), m2.reshape(-1))
        return mean, m2
    scratch = _Scratch(x.dtype)
    for index in blocks(x.shape):
        block = x[index]
        centre = block.sum(axis=2, keepdims=True)
        centre /= count
        dev = np.subtract(block, centre, out=scratch.take(block.shape))
        residual = dev.sum(axis=2).astype(np.float64)
        squares = np.einsum("acs,acs->ac", dev, dev).astype(np.float64)
        # a row holding an infinity has an infinite mean (as in PyTorch), not inf + NaN
        rough = centre[..., 0]
        mean[index] = np.where(np.isfinite(rough), rough + residual / count, rough)
        m2[index] = squares - residual * residual / count
    np.maximum(m2, 0, out=m2)
    return mean, m2


def affine(
    x: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    *,
    centre: np.ndarray | None = None,
    col_scale: np.ndarray | None = None,
    col_shift: np.ndarray | None = None,
    out: np.ndarray | None = None,
    clamp: tuple[float, float] | None = None,
) -> np.ndarray:
    """``out = ((x - centre) * scale + shift) * col_scale + col_shift`` on an ``(A, C, S)``
    array, one block at a time (every block is read from memory once), clipped to ``clamp``
    ``(low, high)`` if given (a fused ReLU or ReLU6; NaN stays NaN).

    ``centre``, ``scale``, ``shift`` hold one value per channel ``(C,)`` or per row ``(A, C)``
    (cast to ``x``'s dtype); ``col_scale`` and ``col_shift`` are ``(S,)``; ``None`` skips a
    step.  With no centre and no column terms this is the single fused pass of an eval-mode
    BatchNorm.

    >>> affine(np.ones((2, 2, 1)), np.array([2.0, 3.0]), np.array([0.0, 1.0]))[:, :, 0].tolist()
    [[2.0, 4.0], [2.0, 4.0]]
    """
    dtype = x.dtype
    out = np.empty(x.shape, dtype) if out is None else out
    scale, shift = scale.astype(dtype, copy=False), shift.astype(dtype, copy=False)
    if centre is not None:
        centre = centre.astype(dtype, copy=False)
    compiled = _forward_kernels(x, out)
    if compiled is not None and x.size:
        nothing = np.empty(0, dtype)
        jit.run(
            compiled.row_affine,
            x.reshape(-1, x.shape[2]),
            nothing if centre is None else _per_row(centre, x.shape, dtype),
            _per_row(scale, x.shape, dtype),
            _per_row(shift, x.shape, dtype),
            nothing if col_scale is None else np.ascontiguousarray(col_scale, dtype),
            nothing if col_shift is None else np.ascontiguousarray(col_shift, dtype),
            out.reshape(-1, x.shape[2]),
            nothing if clamp is None else np.array(clamp, dtype),
        )
        return out
    for index in blocks(x.shape):
        o = out[index]
        if centre is not None:
            np.subtract(x[index], rows(centre, index), out=o)
            np.multiply(o, rows(scale, index), out=o)
        else:
            np.multiply(x[index], rows(scale, index), out=o)
        np.add(o, rows(shift, index), out=o)
        if col_scale is not None:
            np.multiply(o, col_scale, out=o)
        if col_shift is not None:
            np.add(o, col_shift, out=o)
        if clamp is not None:
            np.clip(o, *clamp, out=o)
    return out


Gate = tuple[np.ndarray, float, float, bool]
"""An activation's backward fused into a normalisation's: ``(output, low, high, nan_passes)``
passes the gradient where ``low < output < high``: ReLU's ``(output, 0, nan, True)`` as
:func:`elementwise.pass_positive` (a NaN or infinite output passes), Hardtanh's and ReLU6's
``(output, low, high, False)`` as :func:`elementwise.pass_inside`."""


def _gated(g: np.ndarray, gate: Gate | None) -> np.ndarray:
    """``g`` through ``gate`` in a separate pass (the NumPy path)."""
    if gate is None:
        return g
    output, low, high, nan_passes = gate
    if nan_passes:
        return elementwise.pass_positive(g, output)
    return elementwise.pass_inside(g, output, low, high)


def _gate_arguments(gate: Gate | None, shape: tuple[int, int], dtype: np.dtype) -> tuple:
    """The compiled kernels' gate arguments: an empty array for no gate."""
    if gate is None:
        return np.empty((0, 0), dtype), 0.0, 0.0, False
    output, low, high, nan_passes = gate
    return output.reshape(shape), float(low), float(high), bool(nan_passes)


def grad_sums(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    col_weight: np.ndarray | None = None,
    gate: Gate | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``sum(h)`` and ``sum(h * (x - centre))`` in float64 ``(A, C)``, where
    ``h = g * col_weight`` (or ``g``), passed through ``gate`` first if given: the two
    reductions of a normalisation's backward.

    >>> s, d = grad_sums(np.ones((1, 1, 3)), np.array([[[1.0, 2.0, 4.0]]]), np.array([2.0]))
    >>> s.tolist(), d.tolist()
    ([[3.0]], [[1.0]])
    """
    kernels = _row_kernels(g, x) if col_weight is None else None
    if kernels is not None and (gate is None or _row_kernels(gate[0], x) is not None):
        total, dot = np.empty(x.shape[:2]), np.empty(x.shape[:2])
        count = total.size
        centre = _per_row(centre, x.shape, x.dtype)
        flat = (
            g.reshape(count, -1),
            x.reshape(count, -1),
            centre,
            total.ravel(),
            dot.ravel(),
            *_gate_arguments(gate, (count, x.shape[2]), x.dtype),
        )
        if x.size < jit.SERIAL_BELOW or get_num_threads() == 1:
            kernels.row_grad_sums_serial(*flat)
        else:
            jit.run(kernels.row_grad_sums, *flat)
        return total, dot
    g = _gated(g, gate)
    total = np.zeros(x.shape[:2])
    dot = np.zeros(x.shape[:2])
    centre = centre.astype(x.dtype, copy=False)
    weighted, deviations = _Scratch(x.dtype), _Scratch(x.dtype)
    for index in blocks(x.shape):
        h = g[index]
        if col_weight is not None:
            h = np.multiply(h, col_weight, out=weighted.take(h.shape))
        dev = np.subtract(x[index], rows(centre, index), out=deviations.take(h.shape))
        total[index] = h.sum(axis=2)
        # products first, then NumPy's pairwise sum along the row: einsum's running float32
        # sums made a BatchNorm's weight gradient 2x as far from float64 as PyTorch's at
        # (8, 64, 56, 56); this is 5x closer for 15% more time in this step
        dot[index] = np.multiply(dev, h, out=dev).sum(axis=2)
    return total, dot


def column_sums(
    g: np.ndarray, x: np.ndarray, centre: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(S,)`` sums over all rows of ``g * x_hat`` and of ``g``, where
    ``x_hat = (x - centre) * scale + shift`` with per-row constants: the weight and bias
    gradients of LayerNorm.

    >>> w, b = column_sums(np.ones((2, 1, 2)), np.zeros((2, 1, 2)), np.zeros((2, 1)),
    ...                    np.ones((2, 1)), np.array([[1.0], [2.0]]))
    >>> w.tolist(), b.tolist()
    ([3.0, 3.0], [2.0, 2.0])
    """
    weight = np.zeros(x.shape[2])
    bias = np.zeros(x.shape[2])
    dtype = x.dtype
    centre, scale = centre.astype(dtype, copy=False), scale.astype(dtype, copy=False)
    shift = shift.astype(dtype, copy=False)
    scratch = _Scratch(dtype)
    for index in blocks(x.shape):
        block = g[index]
        hat = np.subtract(x[index], rows(centre, index), out=scratch.take(block.shape))
        np.multiply(hat, rows(scale, index), out=hat)
        np.add(hat, rows(shift, index), out=hat)
        np.multiply(hat, block, out=hat)
        weight += hat.sum(axis=(0, 1), dtype=np.float64)
        bias += block.sum(axis=(0, 1), dtype=np.float64)
    return weight, bias


def combine(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    col_weight: np.ndarray | None = None,
    gate: Gate | None = None,
) -> np.ndarray:
    """``a * h + b * (x - centre) + c`` with ``h = g * col_weight`` (or ``g``, through
    ``gate`` if given) and per-row (or per-channel) constants: the input gradient of every
    normalisation.

    >>> combine(np.ones((1, 1, 2)), np.array([[[1.0, 3.0]]]), np.array([2.0]), np.array([2.0]),
    ...         np.array([1.0]), np.array([0.5])).tolist()
    [[[1.5, 3.5]]]
    """
    dtype = x.dtype
    out = np.empty(x.shape, dtype)
    kernels = _row_kernels(g, x) if col_weight is None else None
    if kernels is not None and (gate is None or _row_kernels(gate[0], x) is not None):
        count = x.shape[0] * x.shape[1]
        constants = (_per_row(v, x.shape, dtype) for v in (centre, a, b, c))
        gating = _gate_arguments(gate, (count, x.shape[2]), dtype)
        flat = (g.reshape(count, -1), x.reshape(count, -1), *constants, out.reshape(count, -1))
        jit.run(kernels.row_combine, *flat, *gating)
        return out
    g = _gated(g, gate)
    centre, a = centre.astype(dtype, copy=False), a.astype(dtype, copy=False)
    b, c = b.astype(dtype, copy=False), c.astype(dtype, copy=False)
    scratch = _Scratch(dtype)
    for index in blocks(x.shape):
        o = out[index]
        np.subtract(x[index], rows(centre, index), out=o)
        np.multiply(o, rows(b, index), out=o)
        h = g[index]
        term = scratch.take(h.shape)
        if col_weight is not None:
            np.multiply(h, col_weight, out=term)
            np.multiply(term, rows(a, index), out=term)
        else:
            np.multiply(h, rows(a, index), out=term)
        np.add(o, term, out=o)
        np.add(o, rows(c, index), out=o)
    return out


PER_CHANNEL_FROM = 512
"""Positions per plane from which a BatchNorm runs as one compiled job per channel
(:func:`channel_normalize`, :func:`channel_backward`).  Two threads, batch 8, forward and
backward (row kernels in brackets): 56x56 planes 0.8 and 1.0 ms (1.1, 1.7), 28x28 0.9 and
1.5 (1.2, 1.9), 112x112 at batch 1 0.8 and 1.3 (1.2, 1.9); 14x14 0.77 and 1.4 (0.66, 1.05)
and 7x7 0.7 and 1.8 (0.37, 0.54): a job's short rows cost more than the memory it saves."""


def channel_normalize(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
    clamp: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """BatchNorm's training forward on an ``(A, C, S)`` array in one compiled job per channel
    (its rows' moments merged over ``A``, then the rows normalised while in cache): one read
    of the input from memory instead of two.  Returns ``(y, stats, centre)``: ``stats``
    ``(4, C)`` float64 (mean, biased variance, ``1 / sqrt(var + eps)``, the centre's
    rounding), ``centre`` the mean in ``x``'s dtype; or ``None`` without numba, for an empty
    or non-contiguous array, or planes below :data:`PER_CHANNEL_FROM`: then :func:`moments`
    and :func:`affine` do the same steps.

    >>> fused = channel_normalize(np.tile([1.0, 3.0], 256).reshape(1, 1, 512), None, None, 0.0)
    >>> fused is None or (fused[0][0, 0, :2].tolist(), fused[1][:, 0].tolist())
    ([-1.0, 1.0], [2.0, 1.0, 1.0, 0.0])
    """
    compiled = _forward_kernels(x)
    if compiled is None or not x.size or x.shape[2] < PER_CHANNEL_FROM:
        return None
    dtype, channels = x.dtype, x.shape[1]
    out = np.empty(x.shape, dtype)
    stats, centre = np.empty((4, channels)), np.empty(channels, dtype)
    nothing = np.empty(0)
    jit.run(
        compiled.channel_normalize,
        x,
        nothing if weight is None else weight.astype(np.float64),
        nothing if bias is None else bias.astype(np.float64),
        float(eps),
        np.empty(0, dtype) if clamp is None else np.array(clamp, dtype),
        out,
        stats,
        centre,
    )
    return out, stats, centre


def channel_backward(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    stats: np.ndarray,
    weight: np.ndarray | None,
    gate: Gate | None,
    need_x: bool,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The backward of :func:`channel_normalize` in one compiled job per channel: returns
    ``(sums, gx)``, ``sums`` ``(2, C)`` float64 (the bias gradient and the weight gradient
    over ``rstd``), ``gx`` the input gradient (``None`` unless ``need_x``); or ``None`` when
    the compiled kernels do not apply (then :func:`grad_sums` and :func:`combine` do)."""
    kernels = _row_kernels(g, x)
    if kernels is None or (gate is not None and _row_kernels(gate[0], x) is None):
        return None
    rows, channels = x.shape[:2]
    sums = np.empty((2, channels))
    gx = np.empty(x.shape, x.dtype) if need_x else np.empty((0, 0, 0), x.dtype)
    if gate is None:
        gating: tuple = (np.empty((rows, channels, 0), x.dtype), 0.0, 0.0, False)
    else:
        output, low, high, nan_passes = gate
        gating = (output.reshape(x.shape), float(low), float(high), bool(nan_passes))
    nothing = np.empty(0)
    w = nothing if weight is None else weight.astype(np.float64)
    jit.run(kernels.channel_backward, g, x, centre, stats, w, *gating, sums, gx)
    return sums, (gx if need_x else None)


def layer_norm_channels(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> np.ndarray | None:
    """LayerNorm over axis 1 of an ``(N, C, P)`` array at every position, in that layout: what
    a channels-last LayerNorm between two permutes computes (ConvNeXt), without the copies.
    The row path's steps and roundings (statistics summed in float64, per position).
    ``None`` without numba or for an empty or non-contiguous array (then permute and use
    the row path).

    >>> x = np.array([[[1.0, 2.0], [3.0, 6.0]]])
    >>> y = layer_norm_channels(x, None, None, 0.0)
    >>> y is None or y.tolist() == [[[-1.0, -1.0], [1.0, 1.0]]]
    True
    """
    compiled = _forward_kernels(x)
    if compiled is None or not x.size:
        return None
    dtype = x.dtype
    out = np.empty(x.shape, dtype)
    nothing = np.empty(0, dtype)
    jit.run(
        compiled.channels_layer_norm,
        x,
        nothing if weight is None else np.ascontiguousarray(weight, dtype),
        nothing if bias is None else np.ascontiguousarray(bias, dtype),
        float(eps),
        out,
    )
    return out


# ---------------------------------------------------------------- local response norm
def window_sums(squares: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[:, c] = squares[:, c - before : c + after + 1].sum(1)`` on an ``(N, C, S)`` array,
    channels outside ``[0, C)`` counting as zeros."""
    channels = squares.shape[1]
    out = np.zeros_like(squares)
    for offset in range(-before, after + 1):
        lo, hi = max(0, -offset), min(channels, channels - offset)
        if lo < hi:
            out[:, lo:hi] += squares[:, lo + offset : hi + offset]
    return out


def local_response_norm(
    x: np.ndarray, size: int, alpha: float, beta: float, k: float
) -> tuple[np.ndarray, np.ndarray]:
    """``y = x / (k + alpha * mean of x**2 over a window of size channels) ** beta`` on an
    ``(N, C, S)`` array, the window ``[c - size // 2, c + (size - 1) // 2]`` padded with zeros
    and always divided by ``size``; also returns the denominator base ``k + alpha * mean``.

    >>> y, base = local_response_norm(np.full((1, 2, 1), 2.0), 2, 1.0, 1.0, 1.0)
    >>> y.ravel().tolist(), base.ravel().tolist()
    ([0.6666666666666666, 0.4], [3.0, 5.0])
    """
    base = window_sums(x * x, size // 2, (size - 1) // 2)
    base *= x.dtype.type(alpha / size)
    base += x.dtype.type(k)
    y = np.power(base, -x.dtype.type(beta))
    y *= x
    return y, base


def local_response_norm_integer(
    x: np.ndarray, size: int, alpha: float, beta: float, k: float, dtype: np.dtype
) -> np.ndarray:
    """:func:`local_response_norm` of an integer ``(N, C, S)`` array as PyTorch computes it:
    the window mean of the squares is an integer mean (truncated), the result is ``dtype``.

    >>> y = local_response_norm_integer(np.array([[[3], [2]]]), 2, 1.0, 1.0, 0.0, np.float64)
    >>> y.ravel().tolist()
    [0.75, 0.3333333333333333]
    """
    dtype = np.dtype(dtype)
    wide = x.astype(np.int64)
    mean = window_sums(wide * wide, size // 2, (size - 1) // 2) // size
    base = mean.astype(dtype) * dtype.type(alpha) + dtype.type(k)
    return x.astype(dtype) / np.power(base, dtype.type(beta))


def local_response_norm_backward(
    g: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    base: np.ndarray,
    size: int,
    alpha: float,
    beta: float,
) -> np.ndarray:
    """The input gradient of :func:`local_response_norm` (``y`` and ``base`` from its forward).

    Each output ``c`` depends on ``x[c]`` directly and on the squares in its window, so the
    gradient is ``g / base ** beta`` minus ``2 * alpha * beta / size * x`` times the sum, over the
    outputs whose window holds the channel, of ``g * y / base``.

    >>> x = np.full((1, 2, 1), 2.0)
    >>> y, base = local_response_norm(x, 2, 1.0, 1.0, 1.0)
    >>> local_response_norm_backward(np.ones_like(x), x, y, base, 2, 1.0, 1.0).ravel().tolist()
    [-0.27111111111111114, 0.04000000000000001]
    """
    dtype = x.dtype.type
    direct = np.power(base, -dtype(beta))
    direct *= g
    gathered = g * y
    gathered /= base
    # the transpose of the window: output c reads channels [c - before, c + after]
    spread = window_sums(gathered, (size - 1) // 2, size // 2)
    spread *= x
    spread *= dtype(2 * alpha * beta / size)
    direct -= spread
    return direct


__all__ = [
    "BLOCK",
    "affine",
    "blocks",
    "column_sums",
    "combine",
    "grad_sums",
    "local_response_norm",
    "local_response_norm_backward",
    "local_response_norm_integer",
    "moments",
    "rows",
    "window_sums",
]
