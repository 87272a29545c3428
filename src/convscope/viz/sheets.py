"""A contact sheet: an input image next to every feature map a convolution made of it.

>>> import numpy as np
>>> image = np.random.default_rng(0).random((3, 20, 30))
>>> figure = contact_sheet(image, np.random.default_rng(1).random((4, 20, 30)))
>>> [ax.get_title().splitlines()[0] for ax in figure.axes[:5]]
['input', 'channel 1', 'channel 2', 'channel 3', 'channel 4']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .figures import new_figure
from .grids import to_unit_range

#: width of one panel in inches
PANEL_INCHES = 2.6
#: larger pictures are averaged down (by a whole factor) to about this size before drawing:
#: a panel is ~260 pixels wide, and drawing full-size photos makes matplotlib slow
DISPLAY_PIXELS = 400


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


def _columns(panels: int) -> int:
    return panels if panels <= 5 else max(4, math.ceil(math.sqrt(panels)))


def contact_sheet(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    cmap: str = "gray",
) -> Any:
    """A ``Figure`` with the ``(3, H, W)`` (or ``(H, W)``) input in [0, 1] and the ``(C, H', W')``
    feature maps, one panel each, titled ``channel <i>`` (1-based, like the saved files) plus
    ``titles[i]`` and the map's value range.

    ``value_range`` is the grey scale shared by all maps (black = low, white = high), with a
    colour bar; ``None`` scales every map to its own minimum and maximum (no colour bar).
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] < 1:
        raise ValueError(f"feature maps are (C, H, W), got shape {maps.shape}")
    picture = np.asarray(image, dtype=np.float64)
    if picture.ndim == 3:
        picture = picture.transpose(1, 2, 0) if picture.shape[0] == 3 else picture[0]
    picture = to_unit_range(picture)

    panels = maps.shape[0] + 1
    cols = _columns(panels)
    rows = math.ceil(panels / cols)
    # a fixed layout in inches (constrained layout would double the drawing time)
    aspect = max(picture.shape[0] / picture.shape[1], maps.shape[1] / maps.shape[2])
    panel_w, gap_w, label_h, margin = PANEL_INCHES, 0.15, 0.5, 0.1
    panel_h = min(panel_w * aspect, 2.2 * panel_w)
    head = 0.3 + 0.2 * (title or "").count("\n") if title else 0.0
    bar = 1.0 if value_range is not None else 0.0
    width = cols * panel_w + (cols - 1) * gap_w + bar + 2 * margin
    height = rows * (panel_h + label_h) + head + margin
    figure = new_figure(width, height, layout=None)
    axes = figure.subplots(
        rows,
        cols,
        squeeze=False,
        gridspec_kw={
            "left": margin / width,
            "right": (width - bar - margin) / width,
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
    first.set_title(f"input\n{picture.shape[1]} x {picture.shape[0]} px", fontsize=9)
    low, high = value_range if value_range is not None else (None, None)
    shown = None
    for index, (ax, values) in enumerate(zip(axes.flat[1:], maps, strict=False)):
        shown = ax.imshow(shrink_for_display(values), cmap=cmap, vmin=low, vmax=high)
        label = f"channel {index + 1}"
        if titles is not None and index < len(titles):
            label += f": {titles[index]}"
        ax.set_title(f"{label}\nvalues {values.min():.3g} .. {values.max():.3g}", fontsize=9)
    if value_range is not None and shown is not None:
        top = height - head - label_h
        bar_axes = figure.add_axes(
            ((width - bar + 0.15) / width, 0.2 * top / height, 0.18 / width, 0.6 * top / height)
        )
        figure.colorbar(shown, cax=bar_axes, label="feature value")
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    return figure
