"""Pooling on NumPy arrays: max and average over sliding windows, per-axis segment means, and
the adjoint of each (no autograd, no argument validation).

Sliding windows reuse the convolution's machinery: a :class:`~convscope.ops.tiling.ConvGeometry`
describes them, :func:`~convscope.ops.tiling.extract_slab` gives the zero-padded input region a
tile of outputs reads, and the work runs tile by tile within the workspace budget.  A kernel
offset at a time, a strided view of the slab holds that offset's cell of every window.  Padding
never wins a maximum: each offset comes with the mask of output positions whose cell lies
inside the input, and the flat index of that cell (PyTorch's ``return_indices``).

With numba installed (the ``fast`` extra) floating-point max and average pooling run the
compiled kernels of :mod:`convscope.ops._jit_pool` instead: one parallel job per
(sample, channel) plane that gathers its padded rows into a cache-sized buffer and writes the
output in place (:class:`Windows` holds their tables).  Without a gradient to compute, a
max-pooling asks for the values alone (:func:`max_pool_values`): no index array at all.

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
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ..geometry import receptive_extent
from . import jit, tiling
from .threads import get_num_threads
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


# ---------------------------------------------------------------- compiled kernels
CACHE_BYTES = 256 << 10
"""Target size of one compiled job's buffers (phase planes and accumulators of a band)."""

STACK_BYTES = 32 << 10
"""Largest buffers of one depthwise job that stacks the planes of several samples (see
:attr:`Windows.stack`)."""

_FLOATS = (np.dtype("float16"), np.dtype("float32"), np.dtype("float64"))  # not names: faster
_module: ModuleType | None = None
_module_failed = False


def compiled_kernels() -> ModuleType | None:
    """The compiled sliding-window kernels (:mod:`convscope.ops._jit_pool`), or ``None`` when
    numba is missing or the NumPy backend is chosen (``convscope.ops.jit.BACKEND``)."""
    global _module, _module_failed
    if _module is None and not _module_failed and jit.kernels() is not None:
        try:
            from . import _jit_pool
        except (ImportError, RuntimeError, OSError):  # numba present but unusable here
            _module_failed = True
        else:
            _module = _jit_pool
    return _module if jit.kernels() is not None else None


def launch(
    name: str, *args: object, parallel_from: int | None = None, parallel: bool = False
) -> None:
    """Run compiled kernel ``name`` through :func:`convscope.ops.jit.run` (convscope's thread
    count; small calls serially in this thread, ``parallel_from`` and ``parallel`` as there;
    first-call compile times recorded)."""
    jit.run(
        getattr(compiled_kernels(), name), *args, parallel_from=parallel_from, parallel=parallel
    )


def chunks() -> int:
    """Parts the jobs of a compiled kernel are split into: a few per thread."""
    return 4 * get_num_threads()


def as_3d(a: np.ndarray) -> np.ndarray:
    """``(N, C, *S)`` viewed as ``(N, C, D, H, W)`` (leading singleton spatial dims)."""
    return a.reshape((*a.shape[:2], *(1,) * (5 - a.ndim), *a.shape[2:]))


def _lead(values: Sequence[int], fill: int) -> list[int]:
    return [fill] * (3 - len(values)) + list(values)


@dataclass(frozen=True)
class Windows:
    """Tables of the compiled kernels for one geometry (3-D: leading singleton dims added):
    the geometry as 15 integers, the stride phases the taps use, each tap's phase, offset in
    phase cells and flat input offset, the offsets' reach, and output rows per job."""

    geom: np.ndarray
    phases: np.ndarray
    tap_phase: np.ndarray
    tap_q: np.ndarray
    tap_cell: np.ndarray
    reach: np.ndarray
    band: int
    stack: int = 1
    """Samples whose planes the depthwise kernels stack in one job: more than one when a band
    is the whole plane and that many planes' buffers fit :data:`STACK_BYTES`, so that each
    tap's run spans them all (a 7x7 plane alone gives runs too short to vectorise)."""

    def sliding(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The tables every sliding-window kernel takes, in its argument order: ``geom,
        phases, tap_phase, tap_q, reach, band``."""
        return self.geom, self.phases, self.tap_phase, self.tap_q, self.reach, self.band

    @classmethod
    def of(cls, geom: tiling.ConvGeometry, itemsize: int, accumulators: int = 1) -> Windows:
        """Tables for ``geom``; bands sized so one job's phase planes and ``accumulators``
        wide-row arrays of ``itemsize`` bytes fit :data:`CACHE_BYTES` and, over all threads,
        the workspace budget (a band is at least one output row).

        >>> w = Windows.of(pool_geometry((1, 1, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1), False), 4)
        >>> w.phases.tolist(), w.tap_q.tolist()[:3], w.reach.tolist()
        ([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]], [[0, 0, 0], [0, 0, 0], [0, 0, 1]], [0, 1, 1])
        """
        limit = min(CACHE_BYTES, get_workspace_budget() // get_num_threads())
        return cls._cached(geom, itemsize, accumulators, limit)

    @classmethod
    @functools.lru_cache(maxsize=256)
    def _cached(
        cls, geom: tiling.ConvGeometry, itemsize: int, accumulators: int, limit: int
    ) -> Windows:
        size = _lead(geom.input_shape[2:], 1)
        out = _lead(geom.output_size, 1)
        kernel = _lead(geom.kernel_size, 1)
        stride = _lead(geom.stride, 1)
        dilation = _lead(geom.dilation, 1)
        pads = _lead([before for before, _ in geom.pads], 0)
        taps = [
            [k * d for k, d in zip(tap, dilation, strict=True)]
            for tap in itertools.product(*(range(k) for k in kernel))
        ]  # each tap's span from the window's first cell, per dimension
        tap_phase_of = [tuple(t % s for t, s in zip(tap, stride, strict=True)) for tap in taps]
        phases = sorted(set(tap_phase_of))
        tap_q = np.array([[t // s for t, s in zip(tap, stride, strict=True)] for tap in taps])
        tap_q = tap_q.astype(np.int64).reshape(len(taps), 3)
        reach = tap_q.max(axis=0)
        flat = (size[1] * size[2], size[2], 1)
        tap_cell = np.array([sum(t * f for t, f in zip(tap, flat, strict=True)) for tap in taps])
        row = (out[0] + reach[0]) * (out[2] + reach[2]) * itemsize
        per_row = row * (len(phases) + accumulators)
        band = max(1, min(out[1], limit // per_row - int(reach[1])))
        stack = 1
        if band == out[1]:
            per_sample = per_row * (out[1] + int(reach[1]))
            stack = max(1, min(geom.input_shape[0], min(STACK_BYTES, limit) // per_sample))
        return cls(
            geom=np.array([*size, *out, *stride, *dilation, *pads], np.int64),
            phases=np.array(phases, np.int64),
            tap_phase=np.array([phases.index(p) for p in tap_phase_of], np.int64),
            tap_q=tap_q,
            tap_cell=tap_cell.astype(np.int64),
            reach=reach.astype(np.int64),
            band=int(band),
            stack=int(stack),
        )


def _compiled_for(x: np.ndarray, geom: tiling.ConvGeometry) -> bool:
    """Whether the compiled kernels take this call (floating input, no zero insertion)."""
    return (
        x.dtype in _FLOATS
        and x.size > 0
        and max(geom.input_dilation) == 1
        and compiled_kernels() is not None
    )


def _compiled_input(x: np.ndarray) -> np.ndarray:
    """Contiguous input in its compute dtype (float16 in float32), as ``(N, C, D, H, W)``."""
    return as_3d(np.ascontiguousarray(x, dtype=tiling.compute_dtype(x.dtype)))


def _windows(
    slab: np.ndarray, geom: tiling.ConvGeometry, box: Sequence[int], writeable: bool = False
) -> np.ndarray:
    """View ``(nb, C, *box, *K)`` of the windows of ``slab`` (no copy)."""
    sn, sc, *sx = slab.strides
    return tiling.strided_view(
        slab,
        (*slab.shape[:2], *box, *geom.kernel_size),
        (
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
    geom: tiling.ConvGeometry, tile: tiling.Tile, cells: bool = True
) -> Iterator[tuple[tuple[int, ...], np.ndarray | None, np.ndarray]]:
    """Each kernel offset with the flat input index of its cell in every window of ``tile``
    (``None`` unless ``cells``) and the mask of windows where that cell is inside the input
    (not padding)."""
    size = geom.input_shape[2:]
    starts = _starts(geom, tile)
    for offset in itertools.product(*(range(k) for k in geom.kernel_size)):
        coords = [s + k * d for s, k, d in zip(starts, offset, geom.dilation, strict=True)]
        inside = [(c >= 0) & (c < h) for c, h in zip(coords, size, strict=True)]
        flat = _flat(coords, size) if cells else None
        yield offset, flat, functools.reduce(np.logical_and, _grid(inside))


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
    if _compiled_for(x, geom):
        src = _compiled_input(x)
        shape = (*x.shape[:2], *geom.output_size)
        values, indices = np.empty(shape, src.dtype), np.empty(shape, np.int64)
        w = Windows.of(geom, src.itemsize, accumulators=3)
        launch(
            "max_indices",
            src,
            w.geom,
            w.phases,
            w.tap_phase,
            w.tap_q,
            w.tap_cell,
            w.reach,
            w.band,
            chunks(),
            float(_lowest(src.dtype)),
            as_3d(values),
            as_3d(indices),
        )
        return values.astype(x.dtype, copy=False), indices
    return _max_pool_numpy(x, geom, budget, True)


def max_pool_values(
    x: np.ndarray, geom: tiling.ConvGeometry, budget: int | None = None
) -> np.ndarray:
    """Maximum of each window alone (no indices: for calls that need no gradient).

    >>> geom = pool_geometry((1, 1, 5), (3,), (2,), (1,), (1,), False)
    >>> max_pool_values(np.array([[[1.0, np.nan, 2.0, 0.0, 3.0]]]), geom).tolist()
    [[[nan, nan, 3.0]]]
    """
    if _compiled_for(x, geom):
        src = _compiled_input(x)
        values = np.empty((*x.shape[:2], *geom.output_size), src.dtype)
        w = Windows.of(geom, src.itemsize, accumulators=1)
        launch(
            "max_values",
            src,
            *w.sliding(),
            chunks(),
            float(_lowest(src.dtype)),
            as_3d(values),
        )
        return values.astype(x.dtype, copy=False)
    return _max_pool_numpy(x, geom, budget, False)[0]


def _max_pool_numpy(
    x: np.ndarray, geom: tiling.ConvGeometry, budget: int | None, with_indices: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """NumPy reference of :func:`max_pool` (indices only ``with_indices``)."""
    dtype = tiling.compute_dtype(x.dtype)
    shape = (*x.shape[:2], *geom.output_size)
    values = np.empty(shape, x.dtype)
    indices = np.empty(shape, np.int64) if with_indices else None
    scratch = tiling.Scratch(dtype)
    for tile in _tiles(geom, dtype, budget, temporaries=4 if with_indices else 2):
        slab = tiling.extract_slab(x, geom, tile, dtype, scratch)
        windows = _windows(slab, geom, tile.size)
        best = np.full(windows.shape[: 2 + len(tile.size)], _lowest(dtype), dtype)
        if indices is None:
            for offset, _, inside in _offsets(geom, tile, cells=False):
                value = windows[(..., *offset)]
                np.copyto(best, value, where=inside & ((value > best) | (value != value)))
            values[tile.out_index] = best
            continue
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
    flat = indices.reshape(rows, -1)
    if grad.dtype in _FLOATS[1:] and grad.size and compiled_kernels() is not None:
        out = np.empty((rows, cells), grad.dtype)
        launch(
            "max_scatter",
            np.ascontiguousarray(grad).reshape(rows, -1),
            np.ascontiguousarray(flat),
            out,
        )
        return out.reshape(input_shape)
    out = np.zeros((rows, cells), grad.dtype)
    row = np.broadcast_to(np.arange(rows)[:, None], flat.shape)
    inside = flat < cells  # a window of padding only points past the input (PyTorch's index)
    np.add.at(out, (row[inside], flat[inside]), grad.reshape(rows, -1)[inside])
    return out.reshape(input_shape)


def _divisor_axes(
    geom: tiling.ConvGeometry,
    tile: tiling.Tile,
    count_include_pad: bool,
    divisor_override: int | None,
) -> list[np.ndarray]:
    """Per spatial dimension, the factor of each window's divisor (their product is PyTorch's
    divisor): cells inside the padded input, or inside the input alone
    (``count_include_pad=False``); ``divisor_override`` as the first factor and ones."""
    if divisor_override is not None:
        return [
            np.full(b - a, divisor_override if d == 0 else 1, np.int64)
            for d, (a, b) in enumerate(zip(tile.start, tile.stop, strict=True))
        ]
    counts = []
    for start, k, h, (before, _) in zip(
        _starts(geom, tile), geom.kernel_size, geom.input_shape[2:], geom.pads, strict=True
    ):
        end = np.minimum(start + k, h + before)
        counts.append(
            end - start if count_include_pad else np.minimum(end, h) - np.maximum(start, 0)
        )
    return counts


def _divisors(
    geom: tiling.ConvGeometry,
    tile: tiling.Tile,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray | int:
    """PyTorch's divisor of each window of ``tile``, broadcast over ``(N, C, *box)``."""
    if divisor_override is not None:
        return divisor_override
    return math.prod(_grid(_divisor_axes(geom, tile, count_include_pad, None)))


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
    if _compiled_for(x, geom):
        src = _compiled_input(x)
        out = np.empty((*x.shape[:2], *geom.output_size), src.dtype)
        whole = tiling.Tile(slice(None), (0,) * len(geom.output_size), geom.output_size)
        axes = _divisor_axes(geom, whole, count_include_pad, divisor_override)
        axes = [np.ones(1, np.int64)] * (3 - len(axes)) + axes
        w = Windows.of(geom, src.itemsize)
        launch(
            "avg_values",
            src,
            *w.sliding(),
            chunks(),
            *(a.astype(src.dtype) for a in axes),
            as_3d(out),
        )
        return out.astype(x.dtype, copy=False)
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
    if grad.dtype in _FLOATS[1:] and grad.size and compiled_kernels() is not None:
        out = np.empty(geom.input_shape, grad.dtype)
        whole = tiling.Tile(slice(None), (0,) * len(geom.output_size), geom.output_size)
        axes = _divisor_axes(geom, whole, count_include_pad, divisor_override)
        axes = [np.ones(1, np.int64)] * (3 - len(axes)) + axes
        tables = Windows.of(geom, grad.itemsize)
        launch(
            "avg_scatter",
            as_3d(np.ascontiguousarray(grad)),
            tables.geom,
            np.array(_lead(geom.kernel_size, 1), np.int64),
            *(a.astype(grad.dtype) for a in axes),
            as_3d(out),
        )
        return out
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
    cells = math.prod(x.shape[first:])
    if (
        all(len(s) == 1 and s[0] == 0 for s, _ in segments)
        and cells
        and all(
            length[0] == size for (_, length), size in zip(segments, x.shape[first:], strict=True)
        )
    ):  # a global pool: one reduction over the trailing cells
        total = x.reshape(*x.shape[:first], 1, cells).sum(axis=-1, dtype=dtype)
        total = total.reshape(*x.shape[:first], *(1,) * len(segments))
        return (total / np.asarray(cells, dtype)).astype(x.dtype, copy=False)
    for axis, (starts, lengths) in enumerate(segments, start=first):
        size = out.shape[axis]
        count = len(starts)
        step = size // count if count else 0
        tiling_axis = step and size == step * count and np.all(lengths == step)
        if tiling_axis and np.array_equal(starts, np.arange(count) * step):
            # windows tiling the axis (2x2 of 8x8): one reduction
            split = (*out.shape[:axis], count, step, *out.shape[axis + 1 :])
            total = out.reshape(split).sum(axis=axis + 1, dtype=dtype)
            out = total if step == 1 else total / np.asarray(step, dtype)
            continue
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
