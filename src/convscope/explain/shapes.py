"""Shapes of a convolution layer, with the formula filled in, and the inverse questions.

Every size here comes from the layer itself: the layer is built with ``convscope.nn`` and run
on an *empty batch* (``N = 0``), which performs all of its checks and shape arithmetic (the
code in :mod:`convscope.geometry`) without computing anything.  Rejections therefore carry
PyTorch's exception classes and texts: ``ValueError`` from the constructor, ``RuntimeError``
from the forward pass.  The filled-in formulas are for reading; their result is the layer's.

>>> answer = conv_shape((32, 32), kernel_size=3, stride=2, padding=1)
>>> answer.output_shape
(1, 1, 16, 16)
>>> print(answer.formulas[0].filled)
floor((32 + 2*1 - 1*(3-1) - 1) / 2) + 1 = floor(31 / 2) + 1 = 16
>>> padding_for(32, 16, kernel_size=3, stride=2).padding
(1,)
>>> restore(10, kernel_size=3, stride=2, padding=1).output_padding
(1,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import geometry
from ..autograd import no_grad
from ..nn import conv as conv_layers
from ..tensor import Tensor
from . import tables
from .windows import TapMap, tap_map

ConvLayer = conv_layers._ConvNd


# ----------------------------------------------------------------------------- building layers
def build_layer(
    dim: int,
    in_channels: int,
    out_channels: int,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: str = "zeros",
    *,
    transposed: bool = False,
    output_padding: Any = 0,
) -> ConvLayer:
    """``nn.Conv{dim}d`` or ``nn.ConvTranspose{dim}d`` with these arguments (their checks apply).

    >>> build_layer(1, 2, 3, 5)
    Conv1d(2, 3, kernel_size=(5,), stride=(1,))
    """
    if dim not in (1, 2, 3):
        raise ValueError(f"convolutions have 1, 2 or 3 spatial dimensions, not {dim}")
    from .. import nn

    if transposed:
        cls = getattr(nn, f"ConvTranspose{dim}d")
        return cls(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups,
            bias,
            dilation,
            padding_mode,
        )
    if output_padding not in (0, None) and any(np.atleast_1d(output_padding)):
        raise ValueError("output_padding is an argument of transposed convolutions only")
    cls = getattr(nn, f"Conv{dim}d")
    return cls(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        dilation,
        groups,
        bias,
        padding_mode,
    )


def check_layer(layer: Any) -> ConvLayer:
    """``layer`` itself if it is a convolution layer, else ``TypeError``."""
    if not isinstance(layer, ConvLayer):
        raise TypeError(
            "expected a convolution layer (Conv1d/2d/3d or ConvTranspose1d/2d/3d), got "
            f"{type(layer).__name__}"
        )
    return layer


def spatial_dims(layer: ConvLayer) -> int:
    return len(layer.kernel_size)


def run_shape(layer: ConvLayer, input_shape: Sequence[int]) -> tuple[int, ...]:
    """The layer's output shape for ``input_shape`` (batched or not), from an empty-batch run."""
    shape = tuple(int(s) for s in input_shape)
    n = spatial_dims(check_layer(layer))
    if any(s < 0 for s in shape):
        raise RuntimeError(f"negative dimension in input shape {list(shape)}")
    batched = len(shape) == n + 2
    probe = (0, *shape[1:]) if batched else (0, *shape)
    if len(shape) not in (n + 1, n + 2):
        probe = shape  # wrong rank: let the layer reject it in PyTorch's words
    with no_grad():
        out = layer(Tensor(np.zeros(probe, dtype=layer.weight.dtype))).shape
    return (shape[0], *out[1:]) if batched else tuple(out[1:])


def resolved_padding(layer: ConvLayer, spatial: Sequence[int]) -> geometry.Pairs:
    """(before, after) padding per spatial dimension, resolved as the layer resolves it."""
    n = spatial_dims(layer)
    if layer.transposed:
        return geometry.transpose_pads(layer.padding, n)
    return geometry.resolve_padding(
        geometry.normalize_padding(layer.padding, n),
        tuple(spatial),
        geometry.ntuple(layer.kernel_size, n, "kernel_size"),
        geometry.ntuple(layer.stride, n, "stride"),
        geometry.ntuple(layer.dilation, n, "dilation"),
    )


def dim_tap_maps(layer: ConvLayer, spatial: Sequence[int]) -> list[TapMap]:
    """One 1-D :class:`TapMap` per spatial dimension (a convolution's window is their product)."""
    pads = resolved_padding(layer, spatial)
    maps = []
    for a, size in enumerate(spatial):
        maps.append(
            tap_map(
                (size,),
                layer.kernel_size[a],
                layer.stride[a],
                (pads[a],),
                layer.dilation[a],
                padding_mode=layer.padding_mode,
                transposed=layer.transposed,
                output_padding=layer.output_padding[a],
            )
        )
    return maps


# ----------------------------------------------------------------------------- formulas
@dataclass(frozen=True)
class SizeFormula:
    """The output-size formula of one spatial dimension, written out with its numbers."""

    dim: str
    formula: str
    filled: str
    result: int


def _formula(
    dim: str,
    size: int,
    k: int,
    s: int,
    d: int,
    pads: tuple[int, int],
    result: int,
    transposed: bool,
    output_padding: int,
) -> SizeFormula:
    lo, hi = pads
    sym = lo == hi
    pad_sym, pad_num = ("2*p", f"2*{lo}") if sym else ("p_before - p_after", f"{lo} - {hi}")
    if transposed:
        formula = f"({dim} - 1)*s - {pad_sym} + d*(k-1) + output_padding + 1"
        filled = f"({size} - 1)*{s} - {pad_num} + {d}*({k}-1) + {output_padding} + 1 = {result}"
        return SizeFormula(dim, formula, filled, result)
    pad_sym, pad_num = ("2*p", f"2*{lo}") if sym else ("p_before + p_after", f"{lo} + {hi}")
    inner = size + lo + hi - d * (k - 1)
    if s == 1:
        formula = f"{dim} + {pad_sym} - d*(k-1)"
        filled = f"{size} + {pad_num} - {d}*({k}-1) = {result}"
    else:
        formula = f"floor(({dim} + {pad_sym} - d*(k-1) - 1) / s) + 1"
        filled = (
            f"floor(({size} + {pad_num} - {d}*({k}-1) - 1) / {s}) + 1 "
            f"= floor({inner - 1} / {s}) + 1 = {result}"
        )
    return SizeFormula(dim, formula, filled, result)


@dataclass(frozen=True)
class ShapeAnswer:
    """Input and output shape of a layer, the resolved padding and each dimension's formula."""

    layer: str
    transposed: bool
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    formulas: tuple[SizeFormula, ...]
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"{self.layer}",
            f"  input {tables.shape_text(self.input_shape)} -> "
            f"output {tables.shape_text(self.output_shape)}",
        ]
        lines += [f"  {note}" for note in self.notes]
        for f in self.formulas:
            head = f"  {f.dim}_out = "
            lines += [head + f.formula, " " * (len(head) - 2) + "= " + f.filled]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _padding_note(layer: ConvLayer, pads: geometry.Pairs) -> tuple[str, ...]:
    if isinstance(layer.padding, str):
        notes = [f"padding={layer.padding!r} resolves to (before, after) = {_pairs_text(pads)}"]
        strides = layer.stride if isinstance(layer.stride, tuple) else (layer.stride,)
        if layer.padding == "same" and any(s > 1 for s in strides):
            notes.append(
                "PyTorch refuses padding='same' with stride > 1; convscope extends it the way "
                "TensorFlow does (output = ceil(input / stride))"
            )
        elif layer.padding == "causal":
            notes.append("padding='causal' is a convscope extension (PyTorch has no such string)")
        return tuple(notes)
    if any(lo != hi for lo, hi in pads):
        return (f"padding (before, after) per dimension = {_pairs_text(pads)}",)
    return ()


def _pairs_text(pads: geometry.Pairs) -> str:
    return ", ".join(f"({lo}, {hi})" for lo, hi in pads)


def output_shape(layer: ConvLayer, input_shape: Sequence[int]) -> ShapeAnswer:
    """The layer's output shape for ``input_shape`` with every dimension's formula filled in.

    >>> from convscope import nn
    >>> print(output_shape(nn.ConvTranspose2d(16, 8, 2, stride=2), (1, 16, 8, 8)))
    ConvTranspose2d(16, 8, kernel_size=(2, 2), stride=(2, 2))
      input (1, 16, 8, 8) -> output (1, 8, 16, 16)
      H_out = (H - 1)*s - 2*p + d*(k-1) + output_padding + 1
            = (8 - 1)*2 - 2*0 + 1*(2-1) + 0 + 1 = 16
      W_out = (W - 1)*s - 2*p + d*(k-1) + output_padding + 1
            = (8 - 1)*2 - 2*0 + 1*(2-1) + 0 + 1 = 16
    """
    out = run_shape(layer, input_shape)
    n = spatial_dims(layer)
    spatial = tuple(int(s) for s in input_shape)[-n:]
    pads = resolved_padding(layer, spatial)
    formulas = tuple(
        _formula(
            name,
            spatial[a],
            layer.kernel_size[a],
            layer.stride[a],
            layer.dilation[a],
            pads[a],
            out[-n + a],
            layer.transposed,
            layer.output_padding[a],
        )
        for a, name in enumerate(tables.dim_names(n))
    )
    return ShapeAnswer(
        repr(layer),
        layer.transposed,
        tuple(int(s) for s in input_shape),
        tuple(out),
        tuple(pads),
        formulas,
        _padding_note(layer, pads),
    )


def conv_shape(
    input_size: int | Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    *,
    transposed: bool = False,
    output_padding: Any = 0,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    batch: int = 1,
    padding_mode: str = "zeros",
) -> ShapeAnswer:
    """Build the layer for spatial ``input_size`` and answer :func:`output_shape` for it.

    >>> conv_shape(6, kernel_size=5, in_channels=2, out_channels=3, batch=4).output_shape
    (4, 3, 2)
    """
    spatial = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    layer = build_layer(
        len(spatial),
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        dilation,
        groups,
        True,
        padding_mode,
        transposed=transposed,
        output_padding=output_padding,
    )
    return output_shape(layer, (batch, in_channels, *spatial))


# ----------------------------------------------------------------------------- layer table
@dataclass(frozen=True)
class LayerTable:
    """A layer's parameters, weight and bias shapes, counts, receptive field and output size.

    ``rows`` are ``(name, value, explanation)`` strings; the numbers are attributes too.
    ``mult_adds`` counts as torchinfo does (weight and bias elements times the output
    positions); ``multiplications`` is what the layer really multiplies.
    """

    layer: str
    shape: ShapeAnswer
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...] | None
    params: int
    mult_adds: int
    multiplications: int
    receptive_field: tuple[int, ...]
    rows: tuple[tuple[str, str, str], ...] = field(default=())

    def __str__(self) -> str:
        body = tables.table(self.rows, header=("parameter", "value", ""), indent=2)
        formulas = str(self.shape).splitlines()[2:]
        return "\n".join([body, "", "Output size", *formulas])

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _product_text(values: Sequence[int]) -> str:
    return " x ".join(str(v) for v in values)


def layer_table(layer: ConvLayer, input_shape: Sequence[int]) -> LayerTable:
    """Everything about ``layer`` applied to an input of ``input_shape`` (batched or not).

    >>> from convscope import nn
    >>> t = layer_table(nn.Conv1d(2, 3, 5), (4, 2, 6))
    >>> t.params, t.mult_adds, t.receptive_field, t.shape.output_shape
    (33, 264, (5,), (4, 3, 2))
    """
    from .summary import module_mult_adds

    shape = output_shape(layer, input_shape)
    n = spatial_dims(layer)
    spatial = shape.input_shape[-n:]
    batch = shape.input_shape[0] if len(shape.input_shape) == n + 2 else 1
    full_out = shape.output_shape if len(shape.output_shape) == n + 2 else (1, *shape.output_shape)
    weight_shape = tuple(layer.weight.shape)
    bias_shape = None if layer.bias is None else tuple(layer.bias.shape)
    weights = int(np.prod(weight_shape))
    biases = 0 if bias_shape is None else int(bias_shape[0])
    mult_adds = module_mult_adds(layer, full_out)
    out_positions = int(np.prod(full_out[2:]))
    in_positions = int(np.prod(spatial))
    if layer.transposed:
        multiplications = batch * in_positions * weights
        maps = dim_tap_maps(layer, spatial)
        receptive = tuple(int((m.sources >= 0).sum(axis=1).max()) for m in maps)
        receptive_note = "most input cells reaching one output cell"
        mult_note = f"N x input positions x weight = {batch} x {in_positions} x {weights}"
    else:
        multiplications = batch * out_positions * weights
        receptive = geometry.receptive_extent(layer.kernel_size, layer.dilation)
        receptive_note = "window span d*(k-1) + 1 = " + ", ".join(
            f"{d}*({k}-1) + 1" for k, d in zip(layer.kernel_size, layer.dilation, strict=True)
        )
    per_group_in = layer.in_channels // layer.groups
    per_group_out = layer.out_channels // layer.groups
    layout = "(in, out/groups" if layer.transposed else "(out, in/groups"
    rows = [
        ("input", tables.shape_text(shape.input_shape), f"dtype {layer.weight.dtype}"),
        ("output", tables.shape_text(shape.output_shape), ""),
        ("in_channels", str(layer.in_channels), ""),
        ("out_channels", str(layer.out_channels), ""),
        ("kernel_size", str(layer.kernel_size), ""),
        ("stride", str(layer.stride), ""),
        ("padding", repr(layer.padding), "(before, after): " + _pairs_text(shape.padding)),
        ("dilation", str(layer.dilation), ""),
    ]
    if layer.transposed:
        rows.append(("output_padding", str(layer.output_padding), "extra cells at the end"))
    rows += [
        (
            "groups",
            str(layer.groups),
            f"each group: {per_group_in} input -> {per_group_out} output channels",
        ),
        ("padding_mode", layer.padding_mode, ""),
        (
            "weight",
            tables.shape_text(weight_shape),
            f"{layout}, *kernel) = {_product_text(weight_shape)} = {weights}",
        ),
        (
            "bias",
            "None" if bias_shape is None else tables.shape_text(bias_shape),
            "no bias" if bias_shape is None else f"(out_channels,) = {biases}",
        ),
        ("parameters", f"{weights + biases:,}", f"weight {weights} + bias {biases}"),
        (
            "mult-adds",
            f"{mult_adds:,}",
            f"(weight+bias) x N x outputs = {weights + biases} x {batch} x {out_positions}, "
            "as torchinfo counts",
        ),
    ]
    if layer.transposed:
        rows.append(("multiplications", f"{multiplications:,}", mult_note))
    rows.append(("receptive field", tables.shape_text(receptive), receptive_note))
    return LayerTable(
        repr(layer),
        shape,
        weight_shape,
        bias_shape,
        weights + biases,
        mult_adds,
        multiplications,
        tuple(receptive),
        tuple(rows),
    )


# ----------------------------------------------------------------------------- inverse questions
@dataclass(frozen=True)
class DimPadding:
    """The paddings of one dimension that give the target size.

    For a convolution: ``totals`` (before + after) that work and the ``symmetric`` ``p`` among
    them; for a transposed one: ``pairs`` of ``(padding, output_padding)``.
    """

    dim: str
    input_size: int
    target_size: int
    totals: tuple[int, ...] = ()
    symmetric: tuple[int, ...] = ()
    pairs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PaddingAnswer:
    """Which padding makes a layer produce ``target_size`` — and the layer built with it.

    ``padding`` is the value to pass: an int tuple when every dimension has a symmetric
    solution (works in PyTorch too), else per-side pairs (convscope only; in PyTorch pad with
    ``F.pad`` first).  ``check`` is the layer built with the answer and its real output shape.
    """

    question: str
    transposed: bool
    dims: tuple[DimPadding, ...]
    padding: Any
    output_padding: tuple[int, ...] | None
    check: ShapeAnswer

    @property
    def portable(self) -> bool:
        return not geometry.is_per_side(self.padding)

    def __str__(self) -> str:
        lines = [self.question]
        for d in self.dims:
            if self.transposed:
                options = ", ".join(f"padding={p} output_padding={o}" for p, o in d.pairs)
                lines.append(f"  {d.dim}: {d.input_size} -> {d.target_size} with {options}")
            else:
                sym = ", ".join(f"padding={p}" for p in d.symmetric) or "no symmetric padding"
                totals = (
                    f"{d.totals[0]}" if len(d.totals) == 1 else f"{d.totals[0]}..{d.totals[-1]}"
                )
                lines.append(
                    f"  {d.dim}: {d.input_size} -> {d.target_size} with total padding {totals} "
                    f"(before + after); {sym}"
                )
        answer = f"padding={self.padding!r}"
        if self.output_padding is not None:
            answer += f", output_padding={self.output_padding!r}"
        if not self.portable:
            answer += "  (per-side: convscope only; in PyTorch apply F.pad first)"
        lines += [f"answer: {answer}", "check:", _indent(str(self.check))]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = _jsonable(asdict(self))
        data["portable"] = self.portable
        return data


def _indent(text: str, by: int = 2) -> str:
    return "\n".join(" " * by + line for line in text.splitlines())


def _conv_size(size: int, k: int, s: int, d: int, lo: int, hi: int) -> int | None:
    try:
        return geometry.conv_output_shape(size, k, s, ((lo, hi),), d)[0]
    except RuntimeError:  # kernel larger than the padded input
        return None


def _conv_totals(size: int, target: int, k: int, s: int, d: int) -> tuple[int, ...]:
    """Total paddings giving ``target`` (the output grows with the padding: binary search)."""

    def out(total: int) -> int:
        value = _conv_size(size, k, s, d, total // 2, total - total // 2)
        return 0 if value is None else value

    lo, hi = 0, (target - 1) * s + d * (k - 1) + 1  # hi surely reaches the target
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if out(mid) < target else (lo, mid)
    totals = tuple(t for t in range(lo, lo + s) if out(t) == target)
    if not totals:
        raise ValueError(
            f"no padding gives an output size of {target} for an input of {size} "
            f"(kernel_size={k}, stride={s}, dilation={d}): padding 0 already gives {out(0)}, "
            "and padding only makes the output larger"
        )
    return totals


def _transpose_pairs(size: int, target: int, k: int, s: int, d: int) -> tuple[tuple[int, int], ...]:
    pairs = []
    widest = ((size - 1) * s + d * (k - 1) + max(s, d)) // 2
    for p in range(widest + 1):
        for o in range(max(s, d)):
            try:
                got = geometry.conv_transpose_output_shape(size, k, s, p, o, d)[0]
            except RuntimeError:
                continue
            if got == target:
                pairs.append((p, o))
    if not pairs:
        smallest = geometry.conv_transpose_output_shape(size, k, s, 0, 0, d)[0]
        raise ValueError(
            f"no padding/output_padding gives an output size of {target} for an input of {size} "
            f"(kernel_size={k}, stride={s}, dilation={d}): sizes reach from 1 to "
            f"{smallest + max(s, d) - 1} at most"
        )
    return tuple(pairs)


def padding_for(
    input_size: int | Sequence[int],
    target_size: int | Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    dilation: Any = 1,
    *,
    transposed: bool = False,
) -> PaddingAnswer:
    """The padding (and for a transposed layer the output_padding) giving ``target_size``.

    >>> answer = padding_for((28, 28), 14, kernel_size=4, stride=2)
    >>> answer.padding, answer.check.output_shape
    ((1, 1), (1, 1, 14, 14))
    >>> padding_for(5, 10, kernel_size=3, stride=2, transposed=True).output_padding
    (1,)
    """
    spatial = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    n = len(spatial)
    target = geometry.ntuple(target_size, n, "target_size")
    kernel = geometry.ntuple(kernel_size, n, "kernel_size")
    strides, dilations = (
        geometry.ntuple(stride, n, "stride"),
        geometry.ntuple(dilation, n, "dilation"),
    )
    geometry.check_kernel(kernel)
    geometry.check_stride_dilation(strides, dilations)
    if any(t < 1 for t in target):
        raise ValueError(f"target sizes must be positive, got {target}")
    dims = []
    for a, name in enumerate(tables.dim_names(n)):
        args = (spatial[a], target[a], kernel[a], strides[a], dilations[a])
        if transposed:
            dims.append(DimPadding(name, spatial[a], target[a], pairs=_transpose_pairs(*args)))
        else:
            totals = _conv_totals(*args)
            sym = tuple(t // 2 for t in totals if t % 2 == 0)
            dims.append(DimPadding(name, spatial[a], target[a], totals=totals, symmetric=sym))
    output_padding = None
    if transposed:
        padding: Any = tuple(d.pairs[0][0] for d in dims)
        output_padding = tuple(d.pairs[0][1] for d in dims)
    elif all(d.symmetric for d in dims):
        padding = tuple(d.symmetric[0] for d in dims)
    else:
        padding = tuple((d.totals[0] // 2, d.totals[0] - d.totals[0] // 2) for d in dims)
    check = conv_shape(
        spatial,
        kernel,
        strides,
        padding,
        dilations,
        transposed=transposed,
        output_padding=output_padding or 0,
    )
    _verify(check, target)
    kind = "ConvTranspose" if transposed else "Conv"
    question = (
        f"Which {'padding and output_padding turn' if transposed else 'padding turns'}"
        f" {spatial} into {target}?\n  {kind}{n}d(kernel_size={kernel}, stride={strides}, "
        f"dilation={dilations})"
    )
    return PaddingAnswer(question, transposed, tuple(dims), padding, output_padding, check)


def _verify(check: ShapeAnswer, target: Sequence[int]) -> None:
    got = check.output_shape[-len(target) :]
    if tuple(got) != tuple(target):  # the solver and the layer disagree: a bug, say so
        raise RuntimeError(f"internal error: solved for {tuple(target)}, the layer gives {got}")


@dataclass(frozen=True)
class RestoreAnswer:
    """The ``output_padding`` that makes a transposed convolution produce ``size``.

    ``down`` is the plain convolution that shrank ``size`` (when asked from that side),
    ``up`` the transposed layer built with the answer and its real output shape.
    """

    question: str
    size: tuple[int, ...]
    output_padding: tuple[int, ...]
    down: ShapeAnswer | None
    up: ShapeAnswer

    def __str__(self) -> str:
        lines = [self.question]
        if self.down is not None:
            lines += ["down:", _indent(str(self.down))]
        lines += [
            f"answer: output_padding={self.output_padding!r} "
            f"restores {tables.shape_text(self.size)}",
            "up:",
            _indent(str(self.up)),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def output_padding_for(
    input_size: int | Sequence[int],
    output_size: int | Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> RestoreAnswer:
    """The ``output_padding`` of a transposed convolution mapping ``input_size`` to ``output_size``.

    Raises ``ValueError`` (as ``ConvTranspose*(..., output_size=...)`` does) when none does.

    >>> output_padding_for(5, 10, kernel_size=3, stride=2, padding=1).output_padding
    (1,)
    """
    spatial = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    wanted = geometry.ntuple(output_size, len(spatial), "output_size")
    out_pad = geometry.transpose_output_padding(
        spatial, wanted, kernel_size, stride, padding, dilation
    )
    up = conv_shape(
        spatial, kernel_size, stride, padding, dilation, transposed=True, output_padding=out_pad
    )
    _verify(up, wanted)
    question = f"Which output_padding makes {up.layer.split('(')[0]} turn {spatial} into {wanted}?"
    return RestoreAnswer(question, wanted, out_pad, None, up)


def restore(
    size: int | Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> RestoreAnswer:
    """A convolution shrinks ``size``; which ``output_padding`` lets the transposed one undo it?

    >>> answer = restore((28, 27), kernel_size=3, stride=2, padding=1)
    >>> answer.down.output_shape, answer.output_padding, answer.up.output_shape
    ((1, 1, 14, 14), (1, 0), (1, 1, 28, 27))
    """
    spatial = (size,) if isinstance(size, int) else tuple(size)
    down = conv_shape(spatial, kernel_size, stride, padding, dilation)
    answer = output_padding_for(
        down.output_shape[2:], spatial, kernel_size, stride, padding, dilation
    )
    question = (
        f"{down.layer} turns {spatial} into {down.output_shape[2:]}.\n"
        "Which output_padding makes the transposed layer with the same arguments restore "
        f"{spatial}?"
    )
    return RestoreAnswer(question, answer.size, answer.output_padding, down, answer.up)


def _jsonable(value: Any) -> Any:
    """Dataclass dicts with tuples as lists and NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
