"""A contact sheet: an input image next to every feature map a convolution made of it.

Feature maps are drawn from their raw values on a scale that keeps their meaning
(:data:`SCALES`): signed maps on a symmetric diverging scale (blue negative, white 0, red
positive), maps of one sign in grey from 0, each map on its own range, or a fixed ``[0, 1]``
grey for values already squashed (sigmoid).  Sizes are written ``H x W`` (height first, as in
PyTorch's shapes) and channels are numbered from 0, as in PyTorch and the saved files.

>>> import numpy as np
>>> image = np.random.default_rng(0).random((3, 20, 30))
>>> figure = contact_sheet(image, np.random.default_rng(1).normal(size=(4, 10, 15)), stride=2)
>>> [ax.get_title().splitlines()[0] for ax in figure.axes[:5]]
['input 20 x 30 (H x W)', 'channel 0', 'channel 1', 'channel 2', 'channel 3']
>>> figure.axes[1].images[0].get_cmap().name, figure.axes[1].images[0].get_clim()[0] < 0
('RdBu_r', True)
>>> print(figure._suptitle.get_text())
output 10 x 15 (H x W) from input 20 x 30, stride 2
maps: blue < 0 (white) < red, one scale for all maps
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .figures import new_figure, text_inches, wrap_text
from .grids import to_unit_range

#: width of one panel in inches
PANEL_INCHES = 2.6
#: larger pictures are averaged down (by a whole factor) to about this size before drawing:
#: a panel is ~260 pixels wide, and drawing full-size photos makes matplotlib slow
DISPLAY_PIXELS = 400
#: how feature maps can be drawn: ``auto`` (diverging when the maps hold both signs, else grey
#: from 0), ``diverging`` (symmetric around 0, shared by all maps), ``per-map`` (grey, each map
#: from its own minimum to its maximum) and ``unit`` (grey on a fixed 0..1, e.g. after sigmoid)
SCALES = ("auto", "diverging", "per-map", "unit")
#: the diverging colour map: blue below 0, white at 0, red above (as the kernel grids)
DIVERGING_CMAP = "RdBu_r"
#: share of the largest magnitudes a diverging scale saturates (edges would wash out the rest)
SATURATED = 0.01
TITLE_SIZE, PANEL_TITLE_SIZE = 10, 9
_MARGIN = 0.1


def shrink_for_display(picture: np.ndarray, limit: int = DISPLAY_PIXELS) -> np.ndarray:
    """Average ``(H, W, ...)`` over ``f x f`` blocks, the smallest whole ``f`` that brings the
    longer side to at most ``limit`` (edge rows/columns that do not fill a block are dropped).

    >>> shrink_for_display(np.arange(16.0).reshape(4, 4), limit=2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    factor = math.ceil(max(picture.shape[:2]) / limit)
    if factor <= 1:
        return picture
    h, w = picture.shape[0] // factor, picture.shape[1] // factor
    blocks = picture[: h * factor, : w * factor].reshape(h, factor, w, factor, *picture.shape[2:])
    return blocks.mean(axis=(1, 3))


class Scale(NamedTuple):
    """How to colour feature maps: a colour map and ``(vmin, vmax)`` shared by all maps
    (``None``: every map on its own range), a sentence saying so, and whether some values lie
    beyond the limits (drawn in the end colours)."""

    cmap: str
    limits: tuple[float, float] | None
    legend: str
    saturated: bool = False


def _finite_range(maps: np.ndarray) -> tuple[float, float]:
    finite = maps[np.isfinite(maps)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def choose_scale(maps: np.ndarray, scale: str = "auto") -> Scale:
    """The :class:`Scale` of ``scale`` (one of :data:`SCALES`) for these maps.

    >>> choose_scale(np.array([[[-1.0, 3.0]]]))[:2]
    ('RdBu_r', (-3.0, 3.0))
    >>> choose_scale(np.array([[[0.25, 0.5]]])).limits
    (0.0, 0.5)
    >>> choose_scale(np.array([[[0.25, 0.5]]]), "per-map").limits is None
    True
    """
    maps = np.asarray(maps, dtype=np.float64)
    low, high = _finite_range(maps)
    shared = ", one scale for all maps" if maps.ndim == 3 and maps.shape[0] > 1 else ""
    if scale == "auto":
        scale = "diverging" if low < 0 < high else "grey"
    if scale == "diverging":
        largest = max(abs(low), abs(high))
        magnitudes = np.abs(maps[np.isfinite(maps)])
        # a few extreme values (edges) would leave everything else white: saturate the top
        # SATURATED share of the magnitudes instead (the colour bar's arrows say so)
        limit = (
            float(np.quantile(magnitudes, 1 - SATURATED, method="higher"))
            if magnitudes.size
            else 0.0
        )
        if limit <= 0 or largest <= 1.25 * limit:  # nothing to gain from saturating
            limit = largest or 1.0
        legend = f"blue < 0 (white) < red{shared}"
        if limit < largest:
            legend += f", saturated beyond ±{limit:.3g}"
        return Scale(DIVERGING_CMAP, (-limit, limit), legend, limit < largest)
    if scale == "grey":  # one sign: 0 at the black end (or the white end for negative maps)
        if high <= 0 < -low:
            return Scale("gray", (low, 0.0), f"grey: black = lowest, white = 0{shared}")
        top = high if high > 0 else 1.0
        return Scale("gray", (0.0, top), f"grey: black = 0, white = highest{shared}")
    if scale == "per-map":
        return Scale("gray", None, "each map black = its minimum, white = its maximum")
    if scale == "unit":
        return Scale("gray", (0.0, 1.0), "black = 0, white = 1")
    raise ValueError(f"unknown scale {scale!r} (choose from {', '.join(SCALES)})")


def hw(shape: Sequence[int]) -> str:
    """``'H x W'`` of a shape's last two sizes.

    >>> hw((3, 600, 512))
    '600 x 512'
    """
    return f"{shape[-2]} x {shape[-1]}"


def size_note(
    input_shape: Sequence[int], output_shape: Sequence[int], stride: Any = None
) -> str | None:
    """A line saying how big the maps are when that differs from the input, else ``None``.

    >>> size_note((28, 28), (14, 14), stride=(2, 2))
    'output 14 x 14 (H x W) from input 28 x 28, stride 2'
    >>> size_note((5, 5), (5, 5), stride=1) is None
    True
    """
    if tuple(input_shape[-2:]) == tuple(output_shape[-2:]):
        return None
    note = f"output {hw(output_shape)} (H x W) from input {hw(input_shape)}"
    if stride is not None:
        steps = (stride, stride) if isinstance(stride, int) else tuple(stride)
        if any(s != 1 for s in steps):
            note += f", stride {steps[0] if len(set(steps)) == 1 else ' x '.join(map(str, steps))}"
    return note


def _columns(panels: int) -> int:
    return panels if panels <= 5 else max(4, math.ceil(math.sqrt(panels)))


def _as_picture(image: np.ndarray) -> np.ndarray:
    picture = np.asarray(image, dtype=np.float64)
    if picture.ndim == 3:
        picture = picture.transpose(1, 2, 0) if picture.shape[0] == 3 else picture[0]
    return to_unit_range(picture)


def contact_sheet(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
    scale: str = "auto",
    stride: Any = None,
    input_shape: Sequence[int] | None = None,
    value_label: str = "feature value",
    ranges: Sequence[tuple[float, float]] | None = None,
    input_label: str | None = None,
) -> Any:
    """A ``Figure`` with the ``(3, H, W)`` (or ``(H, W)``) input in [0, 1] and the ``(C, H', W')``
    feature maps, one panel each, titled ``channel <i>`` (0-based, as in PyTorch and the saved
    files) plus ``titles[i]`` and the map's value range (``ranges[i]`` when given: e.g. the
    full map's range when ``maps`` are reduced copies).  ``input_label`` replaces the input
    panel's title.

    ``scale`` (one of :data:`SCALES`) picks the colours; a shared scale gets a colour bar
    labelled ``value_label``.  When the maps are smaller or larger than the input (of
    ``input_shape``, default the image's), the header says so, with ``stride`` when given.
    The figure is widened (never cropped) to fit its title.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] < 1:
        raise ValueError(f"feature maps are (C, H, W), got shape {maps.shape}")
    picture = _as_picture(image)
    shape = tuple(input_shape) if input_shape is not None else picture.shape[:2]
    colours = choose_scale(maps, scale)
    note = size_note(shape, maps.shape, stride)
    heading = "\n".join(line for line in (title, note, f"maps: {colours.legend}") if line)

    panels = maps.shape[0] + 1
    cols = _columns(panels)
    rows = math.ceil(panels / cols)
    # a fixed layout in inches (constrained layout would double the drawing time)
    aspect = max(picture.shape[0] / picture.shape[1], maps.shape[1] / maps.shape[2])
    panel_w, gap_w, margin = PANEL_INCHES, 0.15, _MARGIN
    labels = [input_label or f"input {hw(shape)} (H x W)"]
    for index, values in enumerate(maps):
        label = f"channel {index}"
        if titles is not None and index < len(titles):
            label += f": {titles[index]}"
        low, high = _finite_range(values) if ranges is None else ranges[index]
        label = f"{label}\nvalues {low:.3g} .. {high:.3g}"
        labels.append(wrap_text(label, PANEL_TITLE_SIZE, panel_w))
    label_lines = max(label.count("\n") + 1 for label in labels)
    label_h = 0.1 + 0.18 * label_lines
    panel_h = min(panel_w * aspect, 2.2 * panel_w)
    bar = 1.0 if colours.limits is not None else 0.0
    grid_w = cols * panel_w + (cols - 1) * gap_w + bar
    width = max(grid_w, text_inches(heading, TITLE_SIZE) + 0.3) + 2 * margin
    head = 0.15 + 0.2 * (heading.count("\n") + 1) if heading else 0.0
    height = rows * (panel_h + label_h) + head + margin
    side = (width - grid_w) / 2  # the grid centred when the title is wider
    figure = new_figure(width, height, layout=None)
    axes = figure.subplots(
        rows,
        cols,
        squeeze=False,
        gridspec_kw={
            "left": side / width,
            "right": (width - bar - side) / width,
            "bottom": margin / height,
            "top": (height - head - label_h) / height,
            "wspace": gap_w / panel_w,
            "hspace": label_h / panel_h,
        },
    )
    for ax in axes.flat:
        ax.set_axis_off()

    first = axes.flat[0]
    first.imshow(
        shrink_for_display(picture), cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1
    )
    first.set_title(labels[0], fontsize=PANEL_TITLE_SIZE)
    low, high = colours.limits if colours.limits is not None else (None, None)
    shown = None
    for ax, values, label in zip(axes.flat[1:], maps, labels[1:], strict=False):
        shown = ax.imshow(
            shrink_for_display(values),
            cmap=colours.cmap,
            vmin=low,
            vmax=high,
            interpolation="nearest",
        )
        ax.set_title(label, fontsize=PANEL_TITLE_SIZE)
    if colours.limits is not None and shown is not None:
        top = height - head - label_h
        left = width - side - bar + 0.15
        bar_axes = figure.add_axes(
            (left / width, 0.2 * top / height, 0.18 / width, 0.6 * top / height)
        )
        extend = "both" if colours.saturated else "neither"
        figure.colorbar(shown, cax=bar_axes, label=value_label, extend=extend)
    if heading:
        figure.suptitle(heading, fontsize=TITLE_SIZE, y=1 - 0.08 / height, va="top")
    return figure


def feature_sheet(
    image: np.ndarray,
    raw: np.ndarray,
    *,
    activation: str,
    activated: np.ndarray | None = None,
    scale: str = "raw",
    **options: Any,
) -> Any:
    """The contact sheet of a layer's ``raw`` ``(C, H', W')`` output: ``scale`` ``"raw"``
    draws the raw values (:data:`SCALES` ``auto``: diverging when signed), ``"per-map"`` each
    raw map on its own grey range, and ``"activation"`` the ``activated`` values (as saved in
    the channel files: ``sigmoid`` and ``minmax`` on a fixed 0..1, ``none`` clipped to it).
    Other ``options`` go to :func:`contact_sheet`; the header says what is drawn.

    >>> maps = np.random.default_rng(0).normal(size=(2, 4, 4))
    >>> sheet = feature_sheet(np.zeros((3, 4, 4)), maps, activation="sigmoid", title="t")
    >>> print(sheet._suptitle.get_text())
    t
    raw layer output (the channel files hold its sigmoid)
    maps: blue < 0 (white) < red, one scale for all maps
    """
    title = options.pop("title", None)
    if scale == "activation":
        if activated is None:
            raise ValueError("scale 'activation' needs the activated maps")
        values = np.clip(activated, 0.0, 1.0) if activation == "none" else activated
        what = f"layer output after {activation}, as in the channel files"
        if activation == "none":
            what = "raw layer output clipped to 0..1, as in the channel files"
        heading = "\n".join(line for line in (title, what) if line)
        return contact_sheet(image, values, title=heading, scale="unit", **options)
    if scale not in ("raw", "per-map"):
        raise ValueError(f"unknown sheet scale {scale!r} (choose from raw, per-map, activation)")
    files = {
        "sigmoid": "the channel files hold its sigmoid",
        "minmax": "the channel files hold each map scaled to 0..1",
        "none": "the channel files hold it clipped to 0..1",
    }.get(activation, f"the channel files hold its {activation}")
    heading = "\n".join(line for line in (title, f"raw layer output ({files})") if line)
    return contact_sheet(
        image, raw, title=heading, scale="auto" if scale == "raw" else "per-map", **options
    )
