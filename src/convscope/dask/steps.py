"""Local layers as window steps: what input cells a block of outputs reads, and how the block
is computed from them with convscope's own functions and modules.

A step is bound to its input's shape and dtype (which runs the function's own checks, with
PyTorch's errors, before anything is computed).  Per spatial axis it then knows its output
size, where an input chunk edge lands in the output (``to_output``), the input range a block
of outputs needs (``needs``, the block plus its halo) and how to compute that block from
exactly that range (``run``).  Consecutive steps run in one task per output block (see
:mod:`convscope.dask.chain`), so no intermediate result ever leaves a task.

Padding is a step of its own: the cells of ``ops.pad``'s padded array are taken from the
array's true border (``ops.pad.source_index``), never from a chunk edge.  Circular padding,
which reads the far side of the array, pads the whole dask array instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import geometry
from ..autograd import no_grad
from ..ops import pad as _pad
from ..tensor import Tensor
from . import halo

PADDING_MODES = tuple(_pad.LAYER_MODES)
Range = tuple[int, int]


def _numpy(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _ints(value: Any, n: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, list | tuple) else (value,)
    return tuple(int(v) for v in (values * n if len(values) == 1 else values))


@dataclass
class Step:
    """One layer bound to an input ``(N, C, *spatial)`` shape and dtype."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...] = field(init=False)
    dtype: np.dtype = field(init=False)

    def to_output(self, axis: int, edge: int) -> int:
        """The output index where an input chunk edge at ``edge`` starts a new output chunk."""
        raise NotImplementedError

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        """The input range outputs ``[j0, j1)`` read along ``axis``."""
        raise NotImplementedError

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        """Outputs ``outputs`` (a range per axis) from ``x``, the input over ``inputs``."""
        raise NotImplementedError

    def run(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        sizes = [b - a for a, b in outputs]
        if 0 in sizes:
            return np.zeros((x.shape[0], self.out_shape[1], *sizes), self.dtype)
        with no_grad():
            return self.compute(x, inputs, outputs)


@dataclass
class Pad(Step):
    """``ops.pad`` (any mode but circular) of the whole array, block by block."""

    pairs: tuple[tuple[int, int], ...] = ()
    mode: str = "constant"
    value: float = 0
    dtype_in: Any = None
    sources: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        _pad.check_pad(self.in_shape, self.pairs, self.mode)
        spatial = self.in_shape[2:]
        lead = len(spatial) - len(self.pairs)
        pairs = ((0, 0),) * lead + tuple(self.pairs)
        self.pairs = pairs
        self.sources = [
            _pad.source_index(size, lo, hi, self.mode)
            for size, (lo, hi) in zip(spatial, pairs, strict=True)
        ]
        self.out_shape = (*self.in_shape[:2], *(len(s) for s in self.sources))
        self.dtype = np.dtype(self.dtype_in)

    def to_output(self, axis: int, edge: int) -> int:
        return edge + self.pairs[axis][0]

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        taken = self.sources[axis][j0:j1]
        taken = taken[taken >= 0]
        return (int(taken.min()), int(taken.max()) + 1) if taken.size else (0, 0)

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        for axis, ((a, b), (j0, j1)) in enumerate(zip(inputs, outputs, strict=True)):
            index = self.sources[axis][j0:j1] - a
            where = 2 + axis
            if index.size == b - a and (index == np.arange(b - a)).all():
                continue  # no padding cell in this block along this axis
            fill = index < 0
            moved = np.take(x, np.where(fill, 0, index), axis=where) if b > a else None
            if moved is None:
                shape = list(x.shape)
                shape[where] = index.size
                moved = np.empty(shape, x.dtype)
            if fill.any():
                cut = [slice(None)] * x.ndim
                cut[where] = fill
                moved[tuple(cut)] = np.array(self.value).astype(x.dtype)
            x = moved
        return x


@dataclass
class ValidConv(Step):
    """``conv{n}d`` without padding (a :class:`Pad` step before it pads)."""

    function: Any = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    dtype_in: Any = None

    def __post_init__(self) -> None:
        kernel = self.weight.shape[2:]
        self.extents = geometry.receptive_extent(kernel, self.dilation)
        out = geometry.conv_output_size(
            self.in_shape[2:], kernel, self.stride, ((0, 0),) * len(kernel), self.dilation
        )
        self.out_shape = (self.in_shape[0], self.weight.shape[0], *out)
        self.dtype = np.dtype(self.dtype_in)

    def to_output(self, axis: int, edge: int) -> int:
        return edge // self.stride[axis]

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        return halo.valid_window(j0, j1, self.stride[axis], self.extents[axis])

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        y = self.function(
            Tensor(x), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )
        return y.data


@dataclass
class TransposedConv(Step):
    """``conv_transpose{n}d`` of the inputs that reach a block, placed in the block."""

    function: Any = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, ...] = ()
    pads: tuple[tuple[int, int], ...] = ()
    output_padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    dtype_in: Any = None

    def __post_init__(self) -> None:
        kernel = self.weight.shape[2:]
        self.spans = geometry.receptive_extent(kernel, self.dilation)
        out = geometry.conv_transpose_output_size(
            self.in_shape[2:], kernel, self.stride, self.pads, self.output_padding, self.dilation
        )
        self.out_shape = (self.in_shape[0], self.weight.shape[1] * self.groups, *out)
        self.dtype = np.dtype(self.dtype_in)

    def to_output(self, axis: int, edge: int) -> int:
        return edge * self.stride[axis]

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        size, lo = self.in_shape[2 + axis], self.pads[axis][0]
        i0, i1, _ = halo.transpose_window(j0, j1, size, self.stride[axis], lo, self.spans[axis])
        return i0, i1

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        sizes = [j1 - j0 for j0, j1 in outputs]
        out = np.zeros((x.shape[0], self.out_shape[1], *sizes), x.dtype)
        if x.size:
            y = self.function(
                Tensor(x), self.weight, None, self.stride, 0, 0, self.groups, self.dilation
            ).data
            src, dst = [slice(None)] * 2, [slice(None)] * 2
            for axis, ((j0, j1), length) in enumerate(zip(outputs, y.shape[2:], strict=True)):
                first = inputs[axis][0] * self.stride[axis] - self.pads[axis][0]
                lo, hi = max(j0, first), min(j1, first + length)
                hi = max(lo, hi)
                src.append(slice(lo - first, hi - first))
                dst.append(slice(lo - j0, hi - j0))
            out[tuple(dst)] = y[tuple(src)]
        if self.bias is None:
            return out
        shape = (-1,) + (1,) * (x.ndim - 2)
        return (Tensor(out) + Tensor(self.bias).reshape(shape)).data


def _probe(module: Any, channels: int, dtype: np.dtype, size: list[int]) -> np.ndarray:
    """The module on a small zero input: its checks (PyTorch's errors, before anything is
    computed), its output channels and dtype."""
    with no_grad():
        return module(Tensor(np.zeros((1, channels, *size), dtype))).data


@dataclass
class Pool(Step):
    """A max or average pooling module run unchanged on stride-aligned windows; the outputs
    next to a window's inner edges (where the module would pad) are cropped off."""

    module: Any = None
    dtype_in: Any = None

    def __post_init__(self) -> None:
        m, n = self.module, len(self.in_shape) - 2
        self.kernel = _ints(m.kernel_size, n)
        self.stride = _ints(m.stride if m.stride is not None else m.kernel_size, n)
        self.padding = _ints(m.padding, n)
        self.dilation = _ints(getattr(m, "dilation", 1), n)
        self.extents = geometry.receptive_extent(self.kernel, self.dilation)
        spatial = self.in_shape[2:]
        small = [
            min(h, e + s + p)
            for h, e, s, p in zip(spatial, self.extents, self.stride, self.padding, strict=True)
        ]
        probe = _probe(m, self.in_shape[1], np.dtype(self.dtype_in), small)
        out = [
            halo.pool_output_size(h, k, s, p, d, m.ceil_mode)
            for h, k, s, p, d in zip(
                spatial, self.kernel, self.stride, self.padding, self.dilation, strict=True
            )
        ]
        self.out_shape = (self.in_shape[0], probe.shape[1], *out)
        self.dtype = probe.dtype

    def to_output(self, axis: int, edge: int) -> int:
        return (edge + self.padding[axis]) // self.stride[axis]

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        size = self.in_shape[2 + axis]
        s, p = self.stride[axis], self.padding[axis]
        a, b, _ = halo.padded_window(j0, j1, size, s, p, self.extents[axis])
        return a, b

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        y = self.module(Tensor(x)).data
        index = [slice(None)] * 2
        for axis, ((a, _), (j0, j1)) in enumerate(zip(inputs, outputs, strict=True)):
            first = j0 - a // self.stride[axis]
            index.append(slice(first, first + j1 - j0))
        return y[tuple(index)]


@dataclass
class Pointwise(Step):
    """A module whose output at a position reads that position's channels only."""

    module: Any = None
    dtype_in: Any = None

    def __post_init__(self) -> None:
        n = len(self.in_shape) - 2
        probe = _probe(self.module, self.in_shape[1], np.dtype(self.dtype_in), [1] * n)
        self.out_shape = (self.in_shape[0], probe.shape[1], *self.in_shape[2:])
        self.dtype = probe.dtype

    def to_output(self, axis: int, edge: int) -> int:
        return edge

    def needs(self, axis: int, j0: int, j1: int) -> Range:
        return j0, j1

    def compute(self, x: np.ndarray, inputs: list[Range], outputs: list[Range]) -> np.ndarray:
        if getattr(self.module, "inplace", False):
            x = x.copy()  # the block may be dask's own input chunk
        return self.module(Tensor(x)).data


@dataclass
class ArrayOp:
    """A step over the whole dask array (not block by block), with its output shape."""

    function: Any
    out_shape: tuple[int, ...]
    dtype: np.dtype

    def __call__(self, x: Any) -> Any:
        return self.function(x)


def _padded_shape(shape: tuple[int, ...], pairs: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    lead = len(shape) - len(pairs)
    return (*shape[:lead], *(s + lo + hi for s, (lo, hi) in zip(shape[lead:], pairs, strict=True)))


def circular_pad(x: Any, pairs: tuple[tuple[int, int], ...]) -> Any:
    """Circular padding (negative amounts crop first) of a whole dask array's trailing axes:
    the wrapped cells come from the far side of the array, so this is not a window step."""
    import dask.array as da

    _pad.check_pad(x.shape, pairs, "circular")
    lead = x.ndim - len(pairs)
    crop = [slice(None)] * lead
    crop += [
        slice(max(-lo, 0), s - max(-hi, 0))
        for (lo, hi), s in zip(pairs, x.shape[lead:], strict=True)
    ]
    x = x[tuple(crop)]
    widths = [(0, 0)] * lead + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    return da.pad(x, widths, mode="wrap") if any(lo or hi for lo, hi in widths) else x


def conv_steps(
    shape: tuple[int, ...],
    dtype: np.dtype,
    function: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    padding_mode: str,
) -> list[Any]:
    """A convolution as steps: padding (a :class:`Pad` step, or the whole array for circular)
    then an unpadded convolution.  The checks are ``function``'s own."""
    from ..nn.functional import conv as _conv

    n = len(shape) - 2
    w, b = _numpy(weight), None if bias is None else _numpy(bias)
    probe = np.broadcast_to(np.zeros((), dtype), shape)  # shape and dtype, no memory
    plan = _conv._resolve(
        function.__name__, n, probe, w, b, stride, padding, dilation, groups, None
    )
    pads, mode = plan["padding"], _pad.LAYER_MODES[padding_mode]
    out: list[Any] = []
    if any(lo or hi for lo, hi in pads):
        if mode == "circular":
            _pad.check_pad(shape, pads, mode)
            shape = _padded_shape(shape, pads)
            out.append(ArrayOp(lambda x, pads=pads: circular_pad(x, pads), shape, np.dtype(dtype)))
        else:
            pad = Pad(shape, pairs=pads, mode=mode, dtype_in=dtype)
            out.append(pad)
            shape = pad.out_shape
    out.append(
        ValidConv(
            shape,
            function=function,
            weight=w,
            bias=b,
            stride=plan["stride"],
            dilation=plan["dilation"],
            groups=groups,
            dtype_in=dtype,
        )
    )
    return out


def conv_transpose_steps(
    shape: tuple[int, ...],
    dtype: np.dtype,
    function: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: int,
    dilation: Any,
) -> list[Any]:
    """A transposed convolution as one step, with ``function``'s own checks."""
    from ..nn.functional import conv as _conv

    n, op = len(shape) - 2, function.__name__
    w, b = _numpy(weight), None if bias is None else _numpy(bias)
    probe = np.broadcast_to(np.zeros((), dtype), shape)
    _conv._resolve(op, n, probe, w, b, stride, padding, dilation, groups, output_padding)
    return [
        TransposedConv(
            shape,
            function=function,
            weight=w,
            bias=b,
            stride=geometry.ntuple(stride, n, "stride", op),
            pads=geometry.transpose_pads(padding, n, op),
            output_padding=geometry.ntuple(output_padding, n, "output_padding", op),
            dilation=geometry.ntuple(dilation, n, "dilation", op),
            groups=groups,
            dtype_in=dtype,
        )
    ]


def pad_steps(
    shape: tuple[int, ...],
    dtype: np.dtype,
    pairs: tuple[tuple[int, int], ...],
    mode: str,
    value: float,
) -> list[Any]:
    """A padding layer: a :class:`Pad` step, or the whole array for circular."""
    if mode == "circular":
        _pad.check_pad(shape, pairs, mode)
        out = _padded_shape(shape, pairs)
        return [ArrayOp(lambda x: circular_pad(x, pairs), out, np.dtype(dtype))]
    return [Pad(shape, pairs=pairs, mode=mode, value=value, dtype_in=dtype)]
