"""One local layer over a chunked ``(N, C, *spatial)`` dask array: each output block runs
convscope's own function or module on its input window (block plus halo).

Convolutions pad the whole array first (with their ``padding_mode``, so reflect, replicate and
circular cells come from the array's true border) and then run unpadded on every window;
pooling layers run unchanged on stride-aligned windows and keep the outputs that saw no
chunk edge; transposed convolutions gather the inputs that reach each output block.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..autograd import no_grad
from ..ops import pad as _pad
from ..tensor import Tensor
from . import halo
from .graph import windowed

PADDING_MODES = tuple(_pad.LAYER_MODES)

#: ``ops.pad`` modes -> ``numpy.pad`` / ``dask.array.pad`` modes with the same values
NUMPY_PAD_MODES = {
    "constant": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def _numpy(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _blocks(chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    edges = halo.boundaries(chunks)
    return list(itertools.pairwise(edges))


def pad_array(x: Any, pairs: tuple[tuple[int, int], ...], mode: str, value: float = 0) -> Any:
    """``x`` padded on its trailing axes by ``(before, after)`` pairs with an ``ops.pad`` mode.

    Negative amounts crop first (PyTorch's order).  Reflect and replicate pads on an axis
    that is also cropped are refused: PyTorch reflects across the uncropped border there.
    """
    import dask.array as da

    _pad.check_pad(x.shape, pairs, mode)
    lead = x.ndim - len(pairs)
    crop = [slice(None)] * lead
    for (lo, hi), size in zip(pairs, x.shape[lead:], strict=True):
        if mode in ("reflect", "replicate") and min(lo, hi) < 0 < max(lo, hi):
            raise NotImplementedError(
                f"convscope.dask: {mode} padding {(lo, hi)} crops and pads one axis at once"
            )
        crop.append(slice(max(-lo, 0), size - max(-hi, 0)))
    x = x[tuple(crop)]
    widths = [(0, 0)] * lead + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if not any(lo or hi for lo, hi in widths):
        return x
    if mode == "constant":
        fill = np.array(value).astype(x.dtype)
        return da.pad(x, widths, mode="constant", constant_values=fill)
    return da.pad(x, widths, mode=NUMPY_PAD_MODES[mode])


@dataclass(frozen=True)
class ValidConv:
    """``conv{n}d`` without padding on one window (the array is padded already)."""

    function: Any
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def __call__(self, window: np.ndarray, block: tuple) -> np.ndarray:
        with no_grad():
            y = self.function(
                Tensor(window), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
            )
        return y.data


def conv(
    x: Any,
    function: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    padding_mode: str,
) -> Any:
    """``function`` (``nn.functional.conv{n}d``) over a dask array, with its checks and errors."""
    from ..nn.functional import conv as _conv

    n = x.ndim - 2
    w, b = _numpy(weight), None if bias is None else _numpy(bias)
    probe = np.broadcast_to(np.zeros((), x.dtype), x.shape)  # shape and dtype, no memory
    plan = _conv._resolve(
        function.__name__, n, probe, w, b, stride, padding, dilation, groups, None
    )
    pads, stride_t, dilation_t = plan["padding"], plan["stride"], plan["dilation"]
    padded = pad_array(x, pads, _pad.LAYER_MODES[padding_mode])
    extents = geometry.receptive_extent(w.shape[2:], dilation_t)
    out_sizes = geometry.conv_output_size(x.shape[2:], w.shape[2:], stride_t, pads, dilation_t)
    out_chunks, windows = [], []
    for axis in range(n):
        lo, s = pads[axis][0], stride_t[axis]
        chunks = halo.output_chunks(
            x.chunks[2 + axis], out_sizes[axis], lambda e, lo=lo, s=s: (e + lo) // s
        )
        out_chunks.append(chunks)
        windows.append([halo.valid_window(j0, j1, s, extents[axis]) for j0, j1 in _blocks(chunks)])
    run = ValidConv(function, w, b, stride_t, dilation_t, groups)
    return windowed(padded, out_chunks, windows, run, w.shape[0], x.dtype, function.__name__)


@dataclass(frozen=True)
class TransposedConv:
    """``conv_transpose{n}d`` of the inputs reaching one output block, placed in the block."""

    function: Any
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    #: per axis, per output block: (j0, j1, global index of the window's first local output)
    blocks: tuple[tuple[tuple[int, int, int], ...], ...]

    def __call__(self, window: np.ndarray, block: tuple) -> np.ndarray:
        spans = [self.blocks[axis][i] for axis, i in enumerate(block)]
        channels = self.weight.shape[1] * self.groups
        out = np.zeros((window.shape[0], channels, *(j1 - j0 for j0, j1, _ in spans)), window.dtype)
        if window.size:
            with no_grad():
                y = self.function(
                    Tensor(window), self.weight, None, self.stride, 0, 0, self.groups, self.dilation
                ).data
            src, dst = [slice(None)] * 2, [slice(None)] * 2
            for (j0, j1, first), length in zip(spans, y.shape[2:], strict=True):
                lo, hi = max(j0, first), min(j1, first + length)
                hi = max(lo, hi)
                src.append(slice(lo - first, hi - first))
                dst.append(slice(lo - j0, hi - j0))
            out[tuple(dst)] = y[tuple(src)]
        if self.bias is None:
            return out
        with no_grad():
            shape = (-1,) + (1,) * (window.ndim - 2)
            return (Tensor(out) + Tensor(self.bias).reshape(shape)).data


def conv_transpose(
    x: Any,
    function: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: int,
    dilation: Any,
) -> Any:
    """``function`` (``nn.functional.conv_transpose{n}d``) over a dask array."""
    from ..nn.functional import conv as _conv

    n = x.ndim - 2
    w, b = _numpy(weight), None if bias is None else _numpy(bias)
    probe = np.broadcast_to(np.zeros((), x.dtype), x.shape)
    op = function.__name__
    _conv._resolve(op, n, probe, w, b, stride, padding, dilation, groups, output_padding)
    stride_t = geometry.ntuple(stride, n, "stride", op)
    dilation_t = geometry.ntuple(dilation, n, "dilation", op)
    pads = geometry.transpose_pads(padding, n, op)
    out_pad = geometry.ntuple(output_padding, n, "output_padding", op)
    kernel = w.shape[2:]
    out_sizes = geometry.conv_transpose_output_size(
        x.shape[2:], kernel, stride_t, pads, out_pad, dilation_t
    )
    span = geometry.receptive_extent(kernel, dilation_t)
    out_chunks, windows, blocks = [], [], []
    for axis in range(n):
        s, lo = stride_t[axis], pads[axis][0]
        chunks = halo.output_chunks(x.chunks[2 + axis], out_sizes[axis], lambda e, s=s: e * s)
        out_chunks.append(chunks)
        axis_windows, axis_blocks = [], []
        for j0, j1 in _blocks(chunks):
            i0, i1, first = halo.transpose_window(j0, j1, x.shape[2 + axis], s, lo, span[axis])
            axis_windows.append((i0, i1))
            axis_blocks.append((j0, j1, first))
        windows.append(axis_windows)
        blocks.append(tuple(axis_blocks))
    run = TransposedConv(function, w, b, stride_t, dilation_t, groups, tuple(blocks))
    return windowed(x, out_chunks, windows, run, w.shape[1] * groups, x.dtype, op)


def _ints(value: Any, n: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, list | tuple) else (value,)
    return tuple(int(v) for v in (values * n if len(values) == 1 else values))


@dataclass(frozen=True)
class CroppedModule:
    """A pooling module run unchanged on a stride-aligned window; the outputs that saw the
    window's inner edges are cropped off."""

    module: Any
    #: per axis, per output block: (first kept local output, number of outputs)
    keep: tuple[tuple[tuple[int, int], ...], ...]

    def __call__(self, window: np.ndarray, block: tuple) -> np.ndarray:
        with no_grad():
            y = self.module(Tensor(window)).data
        index = [slice(None)] * 2
        for axis, i in enumerate(block):
            first, count = self.keep[axis][i]
            index.append(slice(first, first + count))
        return y[tuple(index)]


def pool(x: Any, module: Any) -> Any:
    """A max or average pooling module over a dask array."""
    n = x.ndim - 2
    avg = not hasattr(module, "dilation")
    kernel = _ints(module.kernel_size, n)
    stride = _ints(module.stride if module.stride is not None else module.kernel_size, n)
    padding = _ints(module.padding, n)
    dilation = (1,) * n if avg else _ints(module.dilation, n)
    out_chunks, windows, keep = [], [], []
    for axis in range(n):
        size, k, s, p, d = (
            x.shape[2 + axis],
            kernel[axis],
            stride[axis],
            padding[axis],
            dilation[axis],
        )
        out = halo.pool_output_size(size, k, s, p, d, module.ceil_mode)
        chunks = halo.output_chunks(x.chunks[2 + axis], out, lambda e, p=p, s=s: (e + p) // s)
        out_chunks.append(chunks)
        extent = d * (k - 1) + 1
        axis_windows, axis_keep = [], []
        for j0, j1 in _blocks(chunks):
            a, b, first = halo.padded_window(j0, j1, size, s, p, extent)
            axis_windows.append((a, b))
            axis_keep.append((first, j1 - j0))
        windows.append(axis_windows)
        keep.append(tuple(axis_keep))
    small = [
        min(h, d * (k - 1) + 1 + s + p)
        for h, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation, strict=True)
    ]
    probe = _probe(module, x, small)
    run = CroppedModule(module, tuple(keep))
    return windowed(x, out_chunks, windows, run, x.shape[1], probe.dtype, type(module).__name__)


def _probe(module: Any, x: Any, size: list[int]) -> np.ndarray:
    """The module on a small zero input of ``x``'s channels and dtype: its checks (with
    PyTorch's errors, before anything is computed) and its output dtype and channels."""
    with no_grad():
        return module(Tensor(np.zeros((1, x.shape[1], *size), x.dtype))).data


@dataclass(frozen=True)
class Pointwise:
    """A module whose outputs depend on one position's channels only, run block by block."""

    module: Any

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if getattr(self.module, "inplace", False):
            block = block.copy()  # dask may share the input block with other tasks
        with no_grad():
            return self.module(Tensor(block)).data


def pointwise(x: Any, module: Any) -> Any:
    """An activation, eval-mode batch norm or local response norm over a dask array."""
    probe = _probe(module, x, [1] * (x.ndim - 2))
    chunks = (x.chunks[0], (probe.shape[1],), *x.chunks[2:])
    return x.map_blocks(Pointwise(module), chunks=chunks, dtype=probe.dtype, meta=probe[:0])
