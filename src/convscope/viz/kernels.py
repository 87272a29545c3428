"""Pictures of convolution kernels: every filter of a layer in one grid (tutorial seed 002).

One row per output channel, one column per input channel (``weight[row, column]``), drawn on
one symmetric colour scale shared by all cells (blue negative, white 0, red positive) with a
colour bar, so the cells can be compared; small kernels also show their numbers.

>>> import numpy as np
>>> weight = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
>>> figure = kernel_grid(weight, title="Conv2d(3, 4, 3)")
>>> len(figure.axes)  # the grid and its colour bar
2

A first layer seeing RGB images has the classic picture instead: every filter as one small
colour image (:func:`colour_filters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .figures import fitted_suptitle, new_figure
from .grids import grid_shape

#: rows and columns drawn at most (the title says when a layer has more)
MAX_CHANNELS = 32


def _as_cells(weight: np.ndarray) -> tuple[np.ndarray, str]:
    """``(rows, columns, kh, kw)`` cells of a 1-d, 2-d or 3-d kernel weight, and a note."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim == 3:  # Conv1d: each kernel as a 1 x k strip
        return weight[:, :, None, :], ""
    if weight.ndim == 4:
        return weight, ""
    if weight.ndim == 5:  # Conv3d: the middle depth slice
        middle = weight.shape[2] // 2
        return weight[:, :, middle], f"depth slice {middle} of {weight.shape[2]}"
    raise ValueError(f"a conv weight has 3 to 5 dimensions, got shape {weight.shape}")


class _Layout:
    """Where each kernel goes on one canvas: ``cells[r, c]`` at grid slot ``(gr, gc)``, each
    kernel pixel ``scale`` x ``scale`` canvas pixels, NaN gaps between the slots."""

    def __init__(self, rows: int, cols: int, kh: int, kw: int, wrap: bool) -> None:
        self.scale = max(1, round(12 / max(kh, kw)))  # thin gaps: 1 pixel of a ~12-pixel cell
        self.h, self.w = kh * self.scale, kw * self.scale
        self.wrap = wrap
        if wrap:  # one input channel: the output channels wrapped into a near-square grid
            self.grid = grid_shape(rows)
            self.slots = {(r, 0): divmod(r, self.grid[1]) for r in range(rows)}
            self.row_gap = max(1, round(self.h * 0.45))  # room for a label above each kernel
        else:
            self.grid = (rows, cols)
            self.slots = {(r, c): (r, c) for r in range(rows) for c in range(cols)}
            self.row_gap = 1
        self.col_gap = max(1, round(self.w * 0.12)) if wrap else 1

    def origin(self, gr: int, gc: int) -> tuple[int, int]:
        """Top-left canvas pixel of grid slot ``(gr, gc)``."""
        top = self.row_gap * (gr + 1) if self.wrap else gr * (self.h + self.row_gap)
        return top + (gr * self.h if self.wrap else 0), gc * (self.w + self.col_gap)

    def canvas(self, cells: np.ndarray) -> np.ndarray:
        rows, cols = self.grid
        bottom, right = self.origin(rows - 1, cols - 1)
        canvas = np.full((bottom + self.h, right + self.w), np.nan)
        big = cells.repeat(self.scale, axis=2).repeat(self.scale, axis=3)
        for (r, c), (gr, gc) in self.slots.items():
            top, left = self.origin(gr, gc)
            canvas[top : top + self.h, left : left + self.w] = big[r, c]
        return canvas

    def centre(self, r: int, c: int, y: float, x: float) -> tuple[float, float]:
        """Canvas coordinates ``(x, y)`` of kernel pixel ``(y, x)`` of ``cells[r, c]``."""
        top, left = self.origin(*self.slots[(r, c)])
        return left + (x + 0.5) * self.scale - 0.5, top + (y + 0.5) * self.scale - 0.5


def _ticks(count: int, size: int, gap: int, names: Sequence[str] | None) -> tuple[list, list]:
    step = max(1, count // 16)  # at most ~16 labels per axis
    indices = list(range(0, count, step))
    positions = [i * (size + gap) + (size - 1) / 2 for i in indices]
    labels = [str(names[i]) if names is not None else str(i) for i in indices]
    return positions, labels


def _numbers(values: np.ndarray) -> np.ndarray:
    """Short labels: integers as integers, anything else with two decimals."""
    if np.all(values == np.round(values)) and np.abs(values).max() < 1000:
        texts = [f"{v:.0f}" for v in values.ravel()]
    else:
        texts = [f"{v:.2f}" for v in values.ravel()]
    texts = ["0" if t.strip("-0.") == "" else t.replace("-", "\u2212") for t in texts]
    return np.array(texts, dtype=object).reshape(values.shape)


def kernel_grid(
    weight: Any,
    *,
    title: str | None = None,
    row_label: str = "output channel",
    col_label: str = "input channel",
    row_names: Sequence[str] | None = None,
    col_names: Sequence[str] | None = None,
    shared_scale: bool = True,
    annotate: bool | None = None,
    max_channels: int = MAX_CHANNELS,
    cmap: str = "RdBu_r",
) -> Any:
    """A ``matplotlib.figure.Figure`` showing ``weight[row, column]`` for every output channel
    (row) and input channel (column) of a conv weight ``(out, in, kh, kw)`` (1-d kernels as
    strips, 3-d kernels by their middle depth slice).

    ``shared_scale=False`` scales every cell to its own largest magnitude (for filters of very
    different sizes) and drops the colour bar; the numbers then tell the values.
    ``annotate`` writes each value in its pixel (default: when the kernels are small enough to
    read).  At most ``max_channels`` rows and columns are drawn; the title says so.
    """
    if isinstance(weight, Sequence) and not isinstance(weight, np.ndarray):
        weight = np.asarray(weight)
    cells, note = _as_cells(np.asarray(weight))
    total_rows, total_cols, kh, kw = cells.shape
    if min(cells.shape) < 1:
        raise ValueError(f"nothing to draw in a weight of shape {np.shape(weight)}")
    cells = cells[:max_channels, :max_channels]
    rows, cols = cells.shape[:2]
    notes = [note] if note else []
    if rows < total_rows:
        notes.append(f"first {rows} of {total_rows} {row_label}s")
    if cols < total_cols:
        notes.append(f"first {cols} of {total_cols} {col_label}s")

    if shared_scale:
        limit = float(np.nanmax(np.abs(cells))) or 1.0
    else:
        peak = np.abs(cells).max(axis=(2, 3), keepdims=True)
        cells = cells / np.where(peak > 0, peak, 1.0)
        limit = 1.0
    layout = _Layout(rows, cols, kh, kw, wrap=cols == 1 and rows > 3)
    canvas = layout.canvas(cells)

    # inches per canvas pixel: large enough to read, small enough to fit on a screen
    inch = float(np.clip(min(9.0 / canvas.shape[1], 7.0 / canvas.shape[0]), 0.005, 0.12))
    if annotate is None:
        annotate = inch * layout.scale >= 0.3 and max(kh, kw) <= 7
    width = canvas.shape[1] * inch + (2.4 if shared_scale else 1.4)
    height = canvas.shape[0] * inch + 1.4
    figure = new_figure(max(width, 4.0), max(height, 2.6))
    ax = figure.add_subplot()
    colours = _colour_map(cmap)
    image = ax.imshow(canvas, cmap=colours, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if layout.wrap:
        ax.set_xticks([])
        ax.set_yticks([])
        only = col_names[0] if col_names is not None else "0"
        ax.set_xlabel(f"{row_label}s (row by row) of {col_label} {only}")
        short = row_label.split()[0] if row_label else ""
        for r in range(rows):
            x, y = layout.centre(r, 0, -0.5, (kw - 1) / 2)
            name = row_names[r] if row_names is not None else str(r)
            ax.text(
                x,
                y - layout.row_gap / 2,
                f"{short} {name}".strip(),
                ha="center",
                va="center",
                fontsize=8,
            )
    else:
        ax.set_xticks(*_ticks(cols, layout.w, layout.col_gap, col_names))
        ax.set_yticks(*_ticks(rows, layout.h, layout.row_gap, row_names))
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
    if annotate:
        original = _as_cells(np.asarray(weight))[0][:rows, :cols]
        font = float(np.clip(inch * layout.scale * 72 / 3.4, 5, 9))
        for (r, c, y, x), text in np.ndenumerate(_numbers(original)):
            shade = abs(cells[r, c, y, x]) / limit
            ax.text(
                *layout.centre(r, c, y, x),
                text,
                ha="center",
                va="center",
                fontsize=font,
                color="white" if shade > 0.6 else "black",
            )
    if shared_scale:
        figure.colorbar(image, ax=ax, shrink=0.85, label="weight value (shared scale)")
    heading = title or "convolution kernels"
    if notes:
        heading += f"\n({'; '.join(notes)})"
    fitted_suptitle(figure, heading, 11)
    return figure


def _colour_map(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="white")  # NaN gaps between kernels


def filter_gallery(
    kernels: Mapping[str, Any],
    *,
    descriptions: Mapping[str, str] | None = None,
    title: str | None = None,
    columns: int = 4,
    cmap: str = "RdBu_r",
) -> Any:
    """A ``Figure`` with one panel per named 2-d kernel, each on its own symmetric colour
    scale (their magnitudes differ a lot) with its values written in.

    >>> figure = filter_gallery({"sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]})
    >>> [ax.get_title() for ax in figure.axes]
    ['sobel-x']
    """
    import textwrap

    if not kernels:
        raise ValueError("no kernels to draw")
    rows, cols = grid_shape(len(kernels), columns)
    figure = new_figure(2.3 * cols, 2.5 * rows + 0.5)
    colours = _colour_map(cmap)
    for index, (name, values) in enumerate(kernels.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"kernel {name!r} should be 2-d, got shape {values.shape}")
        limit = float(np.abs(values).max()) or 1.0
        ax = figure.add_subplot(rows, cols, index + 1)
        ax.imshow(values, cmap=colours, vmin=-limit, vmax=limit, interpolation="nearest")
        font = 9 if max(values.shape) <= 3 else 7
        for (y, x), text in np.ndenumerate(_numbers(values)):
            shade = abs(values[y, x]) / limit
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=font,
                color="white" if shade > 0.6 else "black",
            )
        ax.set_title(name, fontsize=10, fontweight="bold")
        if descriptions and name in descriptions:
            ax.set_xlabel(textwrap.fill(descriptions[name], 28), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fitted_suptitle(figure, title or "classic filters", 12)
    return figure


def colour_filters(
    weight: Any, *, cell: int = 56, columns: int = 8, gap: int = 2, max_filters: int | None = None
) -> np.ndarray:
    """The filters of a first conv layer ``(out, 3, kh, kw)`` as one ``uint8`` RGB picture
    ``(H, W, 3)``: each filter is one colour image (its three input channels as red, green and
    blue), scaled on its own so its lowest value is 0 and its highest 255 (all three channels
    together), enlarged with nearest-neighbour repetition to about ``cell`` pixels, in a grid of
    ``columns`` filters per row with white ``gap`` pixels between them.  ``max_filters`` keeps
    only the first ones.

    >>> weight = np.random.default_rng(0).standard_normal((10, 3, 7, 7))
    >>> picture = colour_filters(weight)
    >>> picture.shape, picture.dtype, int(picture[2:58, 2:58].min()), int(picture[2:58, 2:58].max())
    ((118, 466, 3), dtype('uint8'), 0, 255)
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 4 or weight.shape[1] != 3 or weight.shape[0] < 1:
        raise ValueError(f"colour filters need a (out, 3, kh, kw) weight, got {weight.shape}")
    weight = weight[:max_filters]
    count, _, kh, kw = weight.shape
    zoom = max(1, cell // max(kh, kw))
    height, width, rows = kh * zoom, kw * zoom, -(-count // columns)
    picture = np.full(
        (rows * (height + gap) + gap, min(count, columns) * (width + gap) + gap, 3), 255, np.uint8
    )
    low = weight.min(axis=(1, 2, 3), keepdims=True)
    span = weight.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = np.where(span > 0, (weight - low) / np.where(span > 0, span, 1.0), 0.5)
    tiles = np.rint(scaled.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        top, left = gap + r * (height + gap), gap + c * (width + gap)
        picture[top : top + height, left : left + width] = tile
    return picture
