"""Explain one output element of a convolution layer with real numbers, then check it.

``element(layer, x, index)`` runs the layer, asks the engine which input cell each kernel tap
reads for that output (:func:`convscope.explain.tap_map`), and writes the element out: its
group, the input window per input channel (padding cells marked, padding-mode copies named),
the kernel slice, every product, each channel's dot product, the bias and the sum — then
compares that sum with the layer's own output.  For transposed layers it lists which input
cells reach the output through which kernel taps.

>>> import convscope as cs
>>> from convscope import nn
>>> conv = nn.Conv2d(1, 1, 3, bias=False)
>>> conv.weight.data = np.array([[[[1, 2, 1], [0, 1, 0], [2, 1, 0]]]])
>>> x = cs.tensor([[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1],
...                [2, 1, 0, 1, 1]]).reshape(1, 1, 5, 5)
>>> e = element(conv, x, (0, 0, 0, 0))
>>> e.total, e.actual, e.matches
(10, 10, True)
>>> e.channels[0].expression
'sum(x[0, 0, 0:3, 0:3] * w[0, 0])'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from . import tables
from .shapes import (
    ConvLayer,
    LayerTable,
    ShapeAnswer,
    SizeFormula,
    _jsonable,
    check_layer,
    dim_tap_maps,
    layer_table,
    resolved_padding,
    spatial_dims,
)
from .windows import tap_map

Number = int | float


@dataclass(frozen=True)
class Tap:
    """One kernel tap: the input cell it meets (``None``: a zero) and the product."""

    tap: tuple[int, ...]
    source: tuple[int, ...] | None
    padding: bool
    value: Number
    weight: Number
    product: Number


@dataclass(frozen=True)
class ChannelTerm:
    """The dot product of one input channel's window with its kernel slice."""

    input_channel: int
    weight_index: tuple[int, int]
    expression: str
    taps: tuple[Tap, ...]
    dot: Number


@dataclass(frozen=True)
class DimWindow:
    """Along one spatial dimension: the input index each kernel tap meets.

    For a convolution ``positions`` are ``i*s - p_before + t*d`` (outside ``0..size-1`` is
    padding; ``sources`` names the cell a reflect/replicate/circular padding cell copies).
    For a transposed one ``positions`` are the input ``j`` with ``j*s - p + t*d = o`` (``None``
    when no input cell lands on the tap).
    """

    dim: str
    output: int
    size: int
    kernel: int
    stride: int
    padding: tuple[int, int]
    dilation: int
    positions: tuple[int | None, ...]
    padded: tuple[bool, ...]
    sources: tuple[int | None, ...]


@dataclass(frozen=True)
class Explanation:
    """Everything :func:`element` found; ``str()`` is the terminal text, ``to_dict()`` JSON."""

    layer: str
    transposed: bool
    dtype: str
    padding_mode: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    table: LayerTable
    index: tuple[int, ...]
    batched: bool
    group: int
    groups: int
    input_channels: tuple[int, ...]
    out_channels_per_group: int
    dims: tuple[DimWindow, ...]
    channels: tuple[ChannelTerm, ...]
    bias: Number | None
    total: Number
    actual: Number
    difference: Number
    tolerance: float
    identical: bool
    matches: bool
    precision: int = 4

    # ------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (lists for tuples); :meth:`from_dict` reads it back."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """The explanation :meth:`to_dict` described (e.g. after a JSON round trip)."""
        values = {f.name: _tuples(data[f.name]) for f in fields(cls) if f.name in data}
        table, shape = _tuples(data["table"]), _tuples(data["table"]["shape"])
        shape["formulas"] = tuple(SizeFormula(**f) for f in shape["formulas"])
        table["shape"] = ShapeAnswer(**shape)
        values["table"] = LayerTable(**table)
        values["dims"] = tuple(DimWindow(**d) for d in values["dims"])
        values["channels"] = tuple(
            ChannelTerm(**(c | {"taps": tuple(Tap(**t) for t in c["taps"])}))
            for c in values["channels"]
        )
        return cls(**values)

    # ------------------------------------------------------------------ text
    @property
    def name(self) -> str:
        """``y[0, 1, 3]``"""
        return f"y[{tables.index_text(self.index)}]"

    def _num(self, value: Any) -> str:
        return tables.number(value, self.precision)

    def _x(self, channel: int, inner: str) -> str:
        lead = f"{self.index[0]}, " if self.batched else ""
        return f"x[{lead}{channel}, {inner}]"

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, width: int = 100, narrow: bool | None = None) -> str:
        """The explanation for a terminal ``width`` columns wide.

        ``narrow`` lists taps one per line instead of drawing window, kernel and products
        side by side; ``None`` chooses it when the side-by-side drawing would not fit.
        """
        if narrow is None:
            narrow = self._grid_width() > width - 4
        lines = [
            f"{self.layer}",
            f"  input {tables.shape_text(self.input_shape)} -> output "
            f"{tables.shape_text(self.output_shape)}, {self.dtype}",
            "",
            "Layer",
            str(self.table),
            "",
            f"Element {self.name}",
            *self._placement(),
            *self._dim_lines(width),
        ]
        for term in self.channels:
            lines += ["", *self._channel_lines(term, narrow, width)]
        lines += ["", *self._sum_lines(width), "", *self._check_lines()]
        return "\n".join(lines)

    def _placement(self) -> list[str]:
        c = self.index[1] if self.batched else self.index[0]
        first, last = self.input_channels[0], self.input_channels[-1]
        per = self.out_channels_per_group
        where = f"batch {self.index[0]}, " if self.batched else ""
        lines = [
            f"  {where}output channel {c}: group {self.group} of {self.groups} "
            f"(output channels {self.group * per}..{self.group * per + per - 1} "
            f"read input channels {first}..{last})"
        ]
        if self.transposed:
            lines += [
                "  a transposed convolution scatters: input cell x[j] adds x[j] * w[t] to output",
                "  o = j*s - p + t*d for every kernel tap t; gathered at one output:",
            ]
        return lines

    def _dim_lines(self, width: int) -> list[str]:
        lines = []
        for d in self.dims:
            lo = d.padding[0]
            if self.transposed:
                hits = [f"j={j} (t={t})" for t, j in enumerate(d.positions) if j is not None]
                lines.append(
                    f"  {d.dim}: output o={d.output} receives input j where "
                    f"j*{d.stride} - {lo} + t*{d.dilation} = {d.output}: "
                    + (", ".join(hits) if hits else "none")
                )
                continue
            head = (
                f"  {d.dim}: output i={d.output} reads i*s - p + t*d = "
                f"{d.output}*{d.stride} - {lo} + t*{d.dilation} for t = 0..{d.kernel - 1}:"
            )
            shown = [str(p) for p in d.positions]
            pads = [str(p) for p, is_pad in zip(d.positions, d.padded, strict=True) if is_pad]
            note = f"(input 0..{d.size - 1}" + (f"; padding: {' '.join(pads)})" if pads else ")")
            one_line = f"{head} {' '.join(shown)}  {note}"
            if len(one_line) <= width:
                lines.append(one_line)
                continue
            lines.append(head)
            lines += tables.wrap_items("     ", shown, width, indent=5, sep="")
            lines.append(f"     {note}")
        return lines

    def _cells(self, term: ChannelTerm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(d.kernel for d in self.dims)
        xs, ws, ps = (np.empty(shape, dtype=object) for _ in range(3))
        for tap in term.taps:
            value = self._num(tap.value)
            none = self.transposed and tap.source is None
            xs[tap.tap] = "·" if none else f"[{value}]" if tap.padding else value
            ws[tap.tap] = self._num(tap.weight)
            ps[tap.tap] = "·" if none else self._num(tap.product)
        return xs, ws, ps

    def _grid_width(self) -> int:
        if not self.channels:
            return 0
        xs, ws, ps = self._cells(self.channels[0])
        if len(self.dims) == 1:
            return 8 + sum(max(len(a[i]) for a in (xs, ws, ps)) + 2 for i in range(xs.shape[0]))
        return sum(len(tables.grid(a)[0]) for a in (xs, ws, ps)) + 6

    def _channel_lines(self, term: ChannelTerm, narrow: bool, width: int) -> list[str]:
        lines = [f"  input channel {term.input_channel}: {term.expression}"]
        if term.expression.startswith(("xpad", "sum(xpad")):
            lines.append(f"    {self._xpad_note()}")
        lines += self._drawing(term, narrow)
        lines += self._padding_notes(term, width, narrow)
        return lines + self._dot_lines(term, narrow, width)

    def _drawing(self, term: ChannelTerm, narrow: bool) -> list[str]:
        """Window, kernel and products: one row per tap (narrow), rows (1-D) or grids."""
        xs, ws, ps = self._cells(term)
        labels = ("input x", "weight w", "x*w")
        if narrow:
            rows = [
                [
                    tables.index_text(t.tap),
                    self._source_text(term, t),
                    xs[t.tap],
                    ws[t.tap],
                    ps[t.tap],
                ]
                for t in term.taps
            ]
            header = ("tap", "input cell", *labels)
            return [tables.table(rows, header=header, indent=4, right=(2, 3, 4))]
        if len(self.dims) == 1:
            rows = [["tap t", *map(str, range(xs.shape[0]))]]
            rows += [[label, *cells] for label, cells in zip(labels, (xs, ws, ps), strict=True)]
            return [tables.table(rows, indent=4, right=range(1, xs.shape[0] + 1))]
        first = "input x per tap" if self.transposed else "input window x"
        names = [d.dim.lower() for d in self.dims[:-2]]
        blocks = [
            [title, *tables.grid(a, names)]
            for title, a in zip((first, "kernel w", "products x*w"), (xs, ws, ps), strict=True)
        ]
        return ["    " + line for line in tables.side_by_side(blocks, gap=4)]

    def _dot_lines(self, term: ChannelTerm, narrow: bool, width: int) -> list[str]:
        """The dot product written out (for a transposed layer also with its indices)."""
        used = [t for t in term.taps if not (self.transposed and t.source is None)]
        terms = [
            f"{tables.signed(self._num(t.value))}*{tables.signed(self._num(t.weight))}"
            for t in used
        ]
        lines, left = [], "    dot"
        if self.transposed and 0 < len(used) <= 8:
            symbolic = [
                f"{self._x(term.input_channel, tables.index_text(t.source))}"
                f"*w[{tables.index_text(term.weight_index + t.tap)}]"
                for t in used
            ]
            lines += tables.wrap_sum(left, symbolic, "", width)
            left = " " * len(left)
        if narrow:
            return [*lines, f"    sum of the x*w column = {self._num(term.dot)}"]
        return lines + tables.wrap_sum(left, terms or ["0"], self._num(term.dot), width)

    def _xpad_note(self) -> str:
        pads = ", ".join(str(d.padding) for d in self.dims)
        return f"(xpad = x padded by (before, after) = {pads}, padding_mode='{self.padding_mode}')"

    def _source_text(self, term: ChannelTerm, tap: Tap) -> str:
        if tap.source is None:
            return "zero padding" if not self.transposed else "none"
        cell = self._x(term.input_channel, tables.index_text(tap.source))
        return f"{cell} ({self.padding_mode} pad)" if tap.padding else cell

    def _padding_notes(self, term: ChannelTerm, width: int, narrow: bool) -> list[str]:
        pads = [t for t in term.taps if t.padding]
        if not pads:
            return []
        if self.transposed:
            return [
                f"    · = no input cell lands on this tap ({len(pads)} of {len(term.taps)} taps)"
            ]
        if self.padding_mode == "zeros":
            return ["    [v] = padding cell (padding_mode='zeros': value 0)"]
        if narrow:
            return [
                f"    [v] = padding cell, copied by padding_mode='{self.padding_mode}' from the "
                "input cell named in its row"
            ]
        copies = [
            f"({tables.index_text(t.tap)}) <- "
            f"{self._x(term.input_channel, tables.index_text(t.source))}"
            for t in pads
        ]
        head = f"    [v] = padding cell, copied by padding_mode='{self.padding_mode}': tap"
        return tables.wrap_items(head, copies, width, indent=6)

    def _sum_lines(self, width: int) -> list[str]:
        lines = []
        c = self.index[1] if self.batched else self.index[0]
        terms = [tables.signed(self._num(t.dot)) for t in self.channels]
        if self.bias is None:
            lines.append("  bias: none (bias=False)")
        else:
            lines.append(f"  bias b[{c}] = {self._num(self.bias)}")
            terms.append(tables.signed(self._num(self.bias)))
        total = self._num(self.total)
        if len(terms) == 1 and terms[0] == total:
            total = ""
        lines += tables.wrap_sum(f"  {self.name}", terms, total, width)
        return lines

    def _check_lines(self) -> list[str]:
        exact = self.tolerance == 0
        verdict = "MATCH" if self.matches else "MISMATCH"
        lines = [
            "Check",
            f"  the layer's output {self.name} = {_full(self.actual, self.dtype)}",
            f"  {'the sum above'.ljust(len(self.name) + 19)} = "
            f"{_full(self.total, self.dtype if exact else 'float64')}",
        ]
        if exact:
            how = "identical (integer arithmetic is exact)" if self.matches else "they differ"
        elif self.identical:
            how = f"identical after rounding the sum to {self.dtype}"
        else:
            how = (
                f"difference {self.difference:.2g}, within {self.dtype} rounding "
                f"(tolerance {self.tolerance:.2g})"
                if self.matches
                else f"difference {self.difference:.3g} exceeds the tolerance {self.tolerance:.2g}"
            )
        lines.append(f"  {verdict}: {how}")
        return lines


def _full(value: Number, dtype: str) -> str:
    if isinstance(value, int):
        return str(value)
    return np.format_float_positional(np.dtype(dtype).type(value), unique=True, trim="-")


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


# ----------------------------------------------------------------------------- computing
def _python(value: Any) -> Number:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _normalize_index(index: Sequence[int] | int, shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = (index,) if isinstance(index, (int, np.integer)) else tuple(index)
    if len(idx) != len(shape):
        raise IndexError(
            f"an output element of shape {list(shape)} needs {len(shape)} indices, got "
            f"{len(idx)}: {list(idx)}"
        )
    result = []
    for dim, (i, size) in enumerate(zip(idx, shape, strict=True)):
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"indices must be integers, got {i!r}")
        if not -size <= i < size:
            raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
        result.append(int(i) % size)
    return tuple(result)


def _slice_text(positions: Sequence[int], step: int) -> str:
    first, last = positions[0], positions[-1]
    return f"{first}:{last + 1}" if step == 1 else f"{first}:{last + 1}:{step}"


def _expression(
    layer: ConvLayer,
    dims: Sequence[DimWindow],
    lead: str,
    weight_index: tuple[int, int],
    padded: bool,
) -> str:
    w = f"w[{weight_index[0]}, {weight_index[1]}]"
    if layer.transposed:
        inner = f"{weight_index[0]}, {weight_index[1]}"
        return f"x[{lead}j] * w[{inner}, t] summed over the (j, t) pairs above"
    if padded:
        inner = ", ".join(
            _slice_text([p + d.padding[0] for p in d.positions], d.dilation) for d in dims
        )
        name = "xpad"
    else:
        inner = ", ".join(_slice_text(d.positions, d.dilation) for d in dims)
        name = "x"
    return f"{name}[{lead}{inner}] @ {w}" if len(dims) == 1 else f"sum({name}[{lead}{inner}] * {w})"


def _dim_windows(
    layer: ConvLayer, spatial: Sequence[int], position: Sequence[int]
) -> tuple[DimWindow, ...]:
    maps = dim_tap_maps(layer, spatial)
    pads = resolved_padding(layer, spatial)
    names = tables.dim_names(len(spatial))
    dims = []
    for a, m in enumerate(maps):
        o = position[a]
        sources = tuple(int(s) if s >= 0 else None for s in m.sources[o])
        # a convolution's m.grid holds coordinates in the padded input
        padded_at = tuple(int(g) - pads[a][0] for g in m.grid[o])
        positions = sources if layer.transposed else padded_at
        dims.append(
            DimWindow(
                names[a],
                int(o),
                int(spatial[a]),
                int(layer.kernel_size[a]),
                int(layer.stride[a]),
                (int(pads[a][0]), int(pads[a][1])),
                int(layer.dilation[a]),
                positions,
                tuple(bool(p) for p in m.padded[o]),
                sources,
            )
        )
    return tuple(dims)


def _tolerance(dtype: np.dtype, terms: int, scale: float, size: int) -> float:
    """A bound on the layer's rounding error: ``eps * (terms + log2(size) + 2) * scale``.

    ``scale`` bounds every partial sum any algorithm forms (FFT and Winograd mix a whole
    channel), so the bound holds for each of the engine's algorithms.
    """
    eps = float(np.finfo(dtype).eps)
    return 2 * eps * (terms + math.log2(max(size, 2)) + 2) * scale


def _channel_term(
    plane: np.ndarray,
    kernel: np.ndarray,
    sources: np.ndarray,
    padded: np.ndarray,
    spatial: tuple[int, ...],
    exact: bool,
) -> tuple[tuple[Tap, ...], Number]:
    """Every tap of one input channel (what it reads, times its weight) and their sum."""
    flat, zero = plane.reshape(-1), _python(plane.dtype.type(0))
    taps = []
    for t in np.ndindex(kernel.shape):
        src = int(sources[t])
        value, weight = (_python(flat[src]) if src >= 0 else zero), _python(kernel[t])
        cell = None if src < 0 else tuple(int(v) for v in np.unravel_index(src, spatial))
        taps.append(Tap(tuple(map(int, t)), cell, bool(padded[t]), value, weight, value * weight))
    products = [tap.product for tap in taps]
    return tuple(taps), (sum(products) if exact else math.fsum(products))


def element(
    layer: ConvLayer, x: Any, index: Sequence[int] | int, *, precision: int = 4
) -> Explanation:
    """Explain output element ``y[index]`` of ``layer`` applied to ``x`` (batched or not).

    ``index`` has one entry per output dimension: ``(n, c, i, ...)``, or ``(c, i, ...)`` for
    an unbatched input; negative indices count from the end.  ``precision`` is the number of
    decimals shown for floats.
    """
    layer = check_layer(layer)
    n = spatial_dims(layer)
    xa = x.data if isinstance(x, Tensor) else np.asarray(x)
    with no_grad():
        y = layer(Tensor(xa)).numpy()  # the layer's checks and errors come first
    idx = _normalize_index(index, y.shape)
    batched = xa.ndim == n + 2
    xb = xa if batched else xa[None]
    nb, c, *position = idx if batched else (0, *idx)
    spatial = tuple(xb.shape[2:])
    cin, cout = layer.in_channels // layer.groups, layer.out_channels // layer.groups
    group = c // cout
    taps_of = tap_map(
        spatial,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        padding_mode=layer.padding_mode,
        transposed=layer.transposed,
        output_padding=layer.output_padding,
    )
    sources, padded = taps_of.sources[tuple(position)], taps_of.padded[tuple(position)]
    dims = _dim_windows(layer, spatial, position)
    exact = np.dtype(y.dtype).kind in "iu"
    lead = f"{nb}, " if batched else ""
    channels, scale = [], 0.0
    for ci in range(group * cin, group * cin + cin):
        w_index = (ci, c - group * cout) if layer.transposed else (c, ci - group * cin)
        kernel, plane = layer.weight.data[w_index], xb[nb, ci]
        taps, dot = _channel_term(plane, kernel, sources, padded, spatial, exact)
        expression = _expression(layer, dims, f"{lead}{ci}, ", w_index, bool(padded.any()))
        channels.append(ChannelTerm(ci, w_index, expression, taps, dot))
        if not exact and plane.size:
            scale += float(np.abs(plane).max()) * float(np.abs(kernel).sum())
    bias = None if layer.bias is None else _python(layer.bias.data[c])
    terms = [t.product for ch in channels for t in ch.taps] + ([] if bias is None else [bias])
    total = sum(terms) if exact else math.fsum(terms)
    actual = _python(y[idx])
    difference = actual - total
    if exact:
        tolerance, identical = 0.0, difference == 0
        matches = identical
    else:
        tolerance = _tolerance(y.dtype, len(terms), scale + abs(bias or 0.0), xb[0, 0].size)
        identical = bool(y.dtype.type(total) == y.dtype.type(actual))
        both_nan = math.isnan(actual) and math.isnan(total)
        matches = both_nan or identical or abs(difference) <= tolerance
    return Explanation(
        layer=repr(layer),
        transposed=bool(layer.transposed),
        dtype=str(y.dtype),
        padding_mode=layer.padding_mode,
        input_shape=tuple(int(s) for s in xa.shape),
        output_shape=tuple(int(s) for s in y.shape),
        table=layer_table(layer, xa.shape),
        index=idx,
        batched=batched,
        group=int(group),
        groups=int(layer.groups),
        input_channels=tuple(range(group * cin, group * cin + cin)),
        out_channels_per_group=int(cout),
        dims=dims,
        channels=tuple(channels),
        bias=bias,
        total=total,
        actual=actual,
        difference=difference,
        tolerance=tolerance,
        identical=bool(identical),
        matches=bool(matches),
        precision=precision,
    )
