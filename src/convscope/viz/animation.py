"""Sliding-kernel animations of any 1-D or 2-D convolution, drawn from the engine's geometry.

Each frame computes one output position: the *working grid* (the padded input, or for a
transposed convolution the zero-inserted and padded input) in blue, the cells the kernel
taps read darkened, and the output grid in cyan with the cells computed so far.  Which cells
light up comes from :func:`convscope.explain.windows.tap_map`, i.e. from running the
convolution primitive itself, and the numbers (``numbers=True``) from convscope's layer.

>>> cfg = AnimationConfig((5, 5), kernel_size=3, stride=2, padding=1)
>>> cfg.out_shape, cfg.grid_shape
((3, 3), (7, 7))
>>> windows = frames_windows(cfg)
>>> len(windows), windows[4].grid_cells[:3], windows[0].input_cells[:5]
(9, ((2, 2), (2, 3), (2, 4)), (None, None, None, None, (0, 0)))
>>> formula(cfg)
['o = floor((i + 2p - d(k-1) - 1)/s) + 1 = floor((5 + 2 - 2 - 1)/2) + 1 = 3']
>>> frames = render(cfg, numbers=True)
>>> len(frames), frames[0].mode
(9, 'RGB')
>>> sorted(GALLERY)[:2]
['arbitrary_padding_no_strides', 'arbitrary_padding_no_strides_transposed']
"""

from __future__ import annotations

import numbers as _numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import geometry
from ..explain.windows import TapMap, tap_map
from ..ops import conv as conv_ops
from ..ops import pad as pad_ops
from .animation_draw import Layout, Scene, draw_frames, layout
from .animation_save import FORMATS, MP4_HINT, check_format, save

MAX_CELLS = 32  # per side of the input, working grid and output: larger is unreadable anyway
_PAD_OPS = pad_ops.LAYER_MODES


@dataclass(frozen=True)
class AnimationConfig:
    """A 1-D or 2-D convolution to animate, with the layer's argument names and forms.

    Validated on creation with the layer's own errors (``ValueError`` / ``RuntimeError`` /
    ``TypeError``), e.g. a kernel larger than the padded input.
    """

    input_size: Any
    kernel_size: Any = 3
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: Any = 0

    def __post_init__(self) -> None:
        size = self.input_size
        size = (size,) if isinstance(size, _numbers.Integral) else tuple(size)
        geometry.check_int_sequence(size, "input_size")
        if len(size) not in (1, 2):
            raise ValueError(
                f"animations are 1-D or 2-D, but the input size {size} is {len(size)}-D"
            )
        if any(s < 1 for s in size):
            raise ValueError(f"input size must be positive, got {_dims(size)}")
        object.__setattr__(self, "input_size", tuple(int(s) for s in size))
        out = self.out_shape  # the geometry's checks and PyTorch's messages
        self.layer()  # the layer's checks: padding strings, padding modes
        taps = tap_map(
            self.input_size,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            padding_mode=self.padding_mode,
            transposed=self.transposed,
            output_padding=self.output_padding,
        )
        for what, shape in (("input", size), ("working grid", taps.grid_shape), ("output", out)):
            if max(shape) > MAX_CELLS:
                raise ValueError(
                    f"too large to animate: {what} {_dims(shape)} (at most "
                    f"{MAX_CELLS} cells per side)"
                )
        object.__setattr__(self, "_taps", taps)

    @property
    def dims(self) -> int:
        return len(self.input_size)

    @property
    def taps(self) -> TapMap:
        """The engine's tap map of this configuration."""
        return self._taps  # type: ignore[attr-defined]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return self.taps.grid_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Output size from :mod:`convscope.geometry` (the layers' own formula)."""
        if self.transposed:
            return geometry.conv_transpose_output_shape(
                self.input_size,
                self.kernel_size,
                self.stride,
                self.padding,
                self.output_padding,
                self.dilation,
            )
        return geometry.conv_output_shape(
            self.input_size, self.kernel_size, self.stride, self.padding, self.dilation
        )

    @property
    def kernel(self) -> tuple[int, ...]:
        return geometry.ntuple(self.kernel_size, self.dims, "kernel_size")

    def layer(self) -> Any:
        """A one-channel convscope layer without bias for this configuration."""
        from .. import nn

        kind = "ConvTranspose" if self.transposed else "Conv"
        cls = getattr(nn, f"{kind}{self.dims}d")
        extra = {"output_padding": self.output_padding} if self.transposed else {}
        return cls(
            1,
            1,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=False,
            padding_mode=self.padding_mode,
            **extra,
        )

    def name(self) -> str:
        """A file name stem describing the configuration, e.g. ``conv2d_5x5_k3_s2_p1``."""
        parts = [
            f"conv{'_transpose' if self.transposed else ''}{self.dims}d",
            "x".join(map(str, self.input_size)),
            f"k{_short(self.kernel_size)}",
        ]
        if _short(self.stride) != "1":
            parts.append(f"s{_short(self.stride)}")
        padding = self.padding
        if isinstance(padding, str):
            parts.append(padding)
        elif geometry.is_per_side(padding):
            parts.append("p" + "x".join(f"{a}-{b}" for a, b in padding))
        elif _short(padding) != "0":
            parts.append(f"p{_short(padding)}")
        if _short(self.dilation) != "1":
            parts.append(f"d{_short(self.dilation)}")
        if self.transposed and _short(self.output_padding) != "0":
            parts.append(f"op{_short(self.output_padding)}")
        if self.padding_mode != "zeros":
            parts.append(self.padding_mode)
        return "_".join(parts)


def _short(value: Any) -> str:
    values = (
        tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    )
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def _coords(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.unravel_index(int(flat), tuple(shape)))


@dataclass(frozen=True)
class FrameWindow:
    """What one frame highlights, tap by tap (kernel taps in row-major order).

    ``grid_cells``: the working-grid cell each tap reads; ``input_cells``: the input cell
    whose value that is (a padding copy names the cell it copies), ``None`` for a zero.
    """

    output: tuple[int, ...]
    grid_cells: tuple[tuple[int, ...], ...]
    input_cells: tuple[tuple[int, ...] | None, ...]


def frames_windows(config: AnimationConfig) -> list[FrameWindow]:
    """Per frame (output position, row-major), the cells the kernel reads — from the engine."""
    taps = config.taps
    windows = []
    for out in np.ndindex(taps.out_shape):
        grid = taps.grid[out].reshape(-1)
        sources = taps.sources[out].reshape(-1)
        windows.append(
            FrameWindow(
                tuple(int(v) for v in out),
                tuple(_coords(g, taps.grid_shape) for g in grid),
                tuple(None if s < 0 else _coords(s, taps.input_shape) for s in sources),
            )
        )
    return windows


@dataclass(frozen=True)
class WorkingGrid:
    """Every cell of the working grid: ``sources`` (flat input index or -1 for a zero) and
    ``kinds``: ``'input'``, ``'padding'`` (a zero), ``'copy'`` (reflect/replicate/circular
    padding) or ``'inserted'`` (a zero between the inputs of a transposed convolution)."""

    sources: np.ndarray
    kinds: np.ndarray


def working_grid(config: AnimationConfig) -> WorkingGrid:
    """The whole working grid, built with the engine's padding op and primitive.

    :class:`~convscope.explain.windows.TapMap` only describes cells some tap reads; the
    picture also needs the rest (e.g. the last row of an odd strided input).
    """
    taps, n = config.taps, config.dims
    index = np.arange(1, int(np.prod(taps.input_shape)) + 1, dtype=np.int64).reshape(
        taps.input_shape
    )
    if config.transposed:
        ones = (1,) * n
        dilated = conv_ops.conv_general(  # zero insertion = the primitive's input dilation
            index[None, None],
            np.ones((1, 1, *ones), dtype=np.int64),
            stride=ones,
            padding=((0, 0),) * n,
            dilation=ones,
            input_dilation=taps.input_dilation,
        )[0, 0]
        sources = pad_ops.pad(dilated, taps.pads, "constant") - 1
        inside = pad_ops.pad(np.ones_like(dilated), taps.pads, "constant") > 0
        kinds = np.where(sources >= 0, "input", np.where(inside, "inserted", "padding"))
    else:
        sources = pad_ops.pad(index, taps.pads, _PAD_OPS[config.padding_mode]) - 1
        real = pad_ops.pad(index, taps.pads, "constant") > 0
        kinds = np.where(real, "input", np.where(sources >= 0, "copy", "padding"))
    return WorkingGrid(sources, kinds.astype("<U8"))


@dataclass(frozen=True)
class Numbers:
    """Small integer input and kernel (seeded) and the layer's output for them."""

    input: np.ndarray
    kernel: np.ndarray
    output: np.ndarray


def numbers(config: AnimationConfig, seed: int = 0) -> Numbers:
    """Inputs 0..3 and kernel weights 0..2 (as in the classic guide), output by the layer.

    The kernel is never all zeros (that would show nothing): an all-zero draw is drawn again
    from the same generator, so a seed still gives one kernel.

    >>> numbers(AnimationConfig((3,), kernel_size=1), seed=0).kernel  # first draw was [0]
    array([2])
    """
    from ..autograd import no_grad
    from ..tensor import Tensor

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=config.input_size)
    w = rng.integers(0, 3, size=config.kernel)
    while not w.any():
        w = rng.integers(0, 3, size=config.kernel)
    layer = config.layer()
    layer.weight[...] = w.reshape(layer.weight.shape)
    with no_grad():
        y = layer(Tensor(x.astype(np.float32)[None, None])).numpy()[0, 0]
    return Numbers(x, w, np.rint(y).astype(np.int64))  # small integers: float32 is exact


def _values(per_dim: Sequence[str], dims: int) -> list[str]:
    if dims == 1 or per_dim[0] == per_dim[1]:
        return [per_dim[0]]
    return [f"height: {per_dim[0]}", f"width: {per_dim[1]}"]


def formula(config: AnimationConfig) -> list[str]:
    """The output-size formula with this configuration's numbers filled in (one line per
    spatial dimension, or one line when they agree); the result is the geometry's."""
    n, out = config.dims, config.out_shape
    size = config.input_size
    kernel = config.kernel
    stride = geometry.ntuple(config.stride, n, "stride")
    dilation = geometry.ntuple(config.dilation, n, "dilation")
    lines = []
    if config.transposed:
        pads = geometry.transpose_pads(config.padding, n)
        out_pad = geometry.ntuple(config.output_padding, n, "output_padding")
        for i, k, s, (lo, hi), op, d, o in zip(
            size, kernel, stride, pads, out_pad, dilation, out, strict=True
        ):
            if lo == hi:
                head, pad = "2p", f"{lo + hi}"
            else:
                head, pad = "p_l - p_r", f"{lo} - {hi}"
            lines.append(
                f"o = (i - 1)*s - {head} + d(k-1) + op + 1 = "
                f"({i} - 1)*{s} - {pad} + {d * (k - 1)} + {op} + 1 = {o}"
            )
    else:
        pads = config.taps.pads
        for i, k, s, (lo, hi), d, o in zip(size, kernel, stride, pads, dilation, out, strict=True):
            if lo == hi:
                head, pad = "2p", f"{lo + hi}"
            else:
                head, pad = "p_l + p_r", f"{lo} + {hi}"
            lines.append(
                f"o = floor((i + {head} - d(k-1) - 1)/s) + 1 = "
                f"floor(({i} + {pad} - {d * (k - 1)} - 1)/{s}) + 1 = {o}"
            )
    return _values(lines, n)


def _arg(value: Any) -> str:
    """An argument as the user would write it: ``3``, ``(2, 3)``, ``'same'``."""
    if isinstance(value, str):
        return repr(value)
    if geometry.is_per_side(value):
        return repr(tuple(tuple(int(v) for v in pair) for pair in value))
    short = _short(value)
    return short if "x" not in short else repr(tuple(int(v) for v in value))


def _title(config: AnimationConfig) -> str:
    name = f"Conv{'Transpose' if config.transposed else ''}{config.dims}d"
    args = [
        f"kernel_size={_arg(config.kernel_size)}",
        f"stride={_arg(config.stride)}",
        f"padding={_arg(config.padding)}",
    ]
    if isinstance(config.padding, str):
        pads = config.taps.pads
        if len(set(pads)) == 1 and pads[0][0] == pads[0][1]:
            args[-1] += f" (= {pads[0][0]} each side)"
        else:
            args[-1] += f" (= {', '.join(f'{lo}:{hi}' for lo, hi in pads)} before:after)"
    if _short(config.dilation) != "1":
        args.append(f"dilation={_arg(config.dilation)}")
    if config.transposed and _short(config.output_padding) != "0":
        args.append(f"output_padding={_arg(config.output_padding)}")
    if config.padding_mode != "zeros":
        args.append(f"padding_mode={config.padding_mode!r}")
    return (
        f"{name}({', '.join(args)}): input {_dims(config.input_size)} -> "
        f"output {_dims(config.out_shape)}{' (H x W)' if config.dims == 2 else ''}"
    )


def _notes(config: AnimationConfig) -> list[str]:
    taps = config.taps
    if config.transposed:
        pads = geometry.transpose_pads(config.padding, config.dims)
        out_pad = geometry.ntuple(config.output_padding, config.dims, "output_padding")
        parts = []
        for s, (lo, hi), (p_lo, p_hi), op in zip(
            taps.input_dilation, taps.pads, pads, out_pad, strict=True
        ):
            p_before, p_after = ("p", "p") if p_lo == p_hi else ("p_l", "p_r")
            if lo == hi and op == 0:
                pad = f"d(k-1) - p = {lo} padding on each side"
            else:
                pad = (
                    f"d(k-1) - {p_before} = {lo} padding before, d(k-1) - {p_after}"
                    f"{' + op' if op else ''} = {hi} after"
                )
            parts.append(f"s - 1 = {s - 1} zero(s) between inputs; {pad}")
        cropped = any(v < 0 for pair in taps.pads for v in pair)
        return [
            *(f"zero-inserted view: {p}" for p in _values(parts, config.dims)),
            "the flipped kernel slides over it with stride 1"
            + ("; negative padding crops" if cropped else ""),
        ]
    if config.padding_mode != "zeros":
        return [
            f"'{config.padding_mode}' padding: the light cells copy the input cells shown in them"
        ]
    return []


def _step(frame: int, window: FrameWindow, values: Numbers | None, total: int) -> str:
    label = f"step {frame + 1} of {total}: output[{', '.join(map(str, window.output))}]"
    if values is None:
        return label
    weights = values.kernel.reshape(-1)
    terms = [
        f"{int(w)}*{int(values.input[c])}"
        for w, c in zip(weights, window.input_cells, strict=True)
        if c is not None
    ]
    value = int(values.output[window.output])
    if not terms:
        return f"{label} = 0 (only zeros under the kernel) = {value}"
    if len(terms) > 9:
        return f"{label} = sum of {len(terms)} products = {value}"
    return f"{label} = {' + '.join(terms)} = {value}"


def _as_2d(array: np.ndarray) -> np.ndarray:
    return array.reshape(1, -1) if array.ndim == 1 else array


def _cell_2d(coords: Sequence[int]) -> tuple[int, int]:
    return (0, coords[0]) if len(coords) == 1 else (coords[0], coords[1])


def _scene(config: AnimationConfig, show_numbers: bool, seed: int, cell: int) -> Scene:
    if cell < 16:
        raise ValueError(f"cell size must be at least 16 px, got {cell}")
    grid = working_grid(config)
    windows = frames_windows(config)
    values = numbers(config, seed) if show_numbers else None
    if values is not None:
        grid_values = np.where(
            grid.sources >= 0, values.input.reshape(-1)[np.maximum(grid.sources, 0)], 0
        )
        grid_text = grid_values.astype(str)
        out_text = values.output.astype(str)
        weight_text = [str(int(w)) for w in values.kernel.reshape(-1)]
    else:
        if config.padding_mode != "zeros":  # show which input cell each copy repeats
            labels = np.array([",".join(map(str, c)) for c in np.ndindex(config.input_size)])
            grid_text = np.where(grid.sources >= 0, labels[np.maximum(grid.sources, 0)], "")
        else:
            grid_text = np.full(grid.sources.shape, "")
        out_text = np.full(config.out_shape, "")
        weight_text = [""] * int(np.prod(config.kernel))
    taps = config.taps
    if config.transposed:
        grid_label = (
            f"input {_dims(config.input_size)}, zeros inserted and padded: {_dims(taps.grid_shape)}"
        )
    elif all(v == 0 for pair in taps.pads for v in pair):
        grid_label = f"input {_dims(config.input_size)}"
    else:
        mode = "" if config.padding_mode == "zeros" else f"{config.padding_mode}-"
        grid_label = f"input {_dims(config.input_size)}, {mode}padded to {_dims(taps.grid_shape)}"
    return Scene(
        grid_kinds=_as_2d(grid.kinds),
        grid_text=_as_2d(grid_text),
        grid_label=grid_label,
        out_text=_as_2d(out_text),
        out_label=f"output {_dims(config.out_shape)}",
        windows=[[_cell_2d(c) for c in w.grid_cells] for w in windows],
        weight_text=weight_text,
        caption=[_title(config), *formula(config), *_notes(config)],
        steps=[_step(f, w, values, len(windows)) for f, w in enumerate(windows)],
        cell=cell,
    )


def render(
    config: AnimationConfig, *, numbers: bool = False, seed: int = 0, cell: int = 44
) -> list[Any]:
    """The frames (RGB ``PIL.Image``), one per output position in row-major order.

    ``numbers`` writes seeded small integers into the cells: input values (and the values
    padding copies), kernel weights in the corners of the taps, and the layer's outputs.
    """
    return draw_frames(_scene(config, numbers, seed, cell))


def frame_layout(
    config: AnimationConfig, *, numbers: bool = False, seed: int = 0, cell: int = 44
) -> Layout:
    """Pixel boxes of the grids in the frames :func:`render` returns for the same arguments.

    >>> where = frame_layout(AnimationConfig(4, kernel_size=3))
    >>> where.grid_box(0, 1)[0] - where.grid_box(0, 0)[0]
    44
    """
    return layout(_scene(config, numbers, seed, cell))


def transposed_counterpart(config: AnimationConfig) -> AnimationConfig:
    """The transposed convolution that maps this convolution's output size back to its input
    size (same kernel, stride, padding, dilation; ``output_padding`` chosen to fit)."""
    out = config.out_shape
    output_padding = geometry.transpose_output_padding(
        out, config.input_size, config.kernel_size, config.stride, config.padding, config.dilation
    )
    return AnimationConfig(
        out,
        config.kernel_size,
        config.stride,
        config.padding,
        config.dilation,
        transposed=True,
        output_padding=output_padding,
    )


_CLASSIC = {  # the parameter choices of Dumoulin & Visin's "A guide to convolution arithmetic"
    "no_padding_no_strides": AnimationConfig((4, 4), 3),
    "arbitrary_padding_no_strides": AnimationConfig((5, 5), 4, padding=2),
    "half_padding_no_strides": AnimationConfig((5, 5), 3, padding=1),
    "full_padding_no_strides": AnimationConfig((5, 5), 3, padding=2),
    "no_padding_strides": AnimationConfig((5, 5), 3, stride=2),
    "padding_strides": AnimationConfig((5, 5), 3, stride=2, padding=1),
    "padding_strides_odd": AnimationConfig((6, 6), 3, stride=2, padding=1),
    "dilation": AnimationConfig((7, 7), 3, dilation=2),
}
#: the classic set and its transposed counterparts, by file name stem
GALLERY: dict[str, AnimationConfig] = {
    **_CLASSIC,
    **{f"{name}_transposed": transposed_counterpart(c) for name, c in _CLASSIC.items()},
}


def gallery(
    folder: str | os.PathLike,
    *,
    format: str = "gif",
    numbers: bool = False,
    duration: int = 700,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write the classic animations (all of :data:`GALLERY`, or ``names``) into ``folder``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in gallery(tmp, names=["padding_strides"])]
    ['padding_strides.gif']
    """
    check_format(format)
    unknown = sorted(set(names or ()) - set(GALLERY))
    if unknown:
        raise ValueError(f"unknown gallery animation(s) {unknown}; known: {sorted(GALLERY)}")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or GALLERY:
        path = target / f"{name}.{format}"
        save(render(GALLERY[name], numbers=numbers), path, format, duration=duration)
        paths.append(path)
    return paths


__all__ = [
    "FORMATS",
    "GALLERY",
    "MAX_CELLS",
    "MP4_HINT",
    "AnimationConfig",
    "FrameWindow",
    "Numbers",
    "WorkingGrid",
    "check_format",
    "formula",
    "frame_layout",
    "frames_windows",
    "gallery",
    "numbers",
    "render",
    "save",
    "transposed_counterpart",
    "working_grid",
]
