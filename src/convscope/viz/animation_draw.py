"""Pillow drawing of sliding-kernel frames from plain data (no convolution logic here).

:mod:`convscope.viz.animation` decides *what* to show (from the engine's geometry); this
module only lays it out and paints it: the working grid in blue (padding dashed, copies
lighter), the kernel taps of the current frame darkened, the output grid in cyan.  1-D data
arrives as one-row 2-D arrays, so there is one code path.

>>> import numpy as np
>>> scene = Scene(
...     grid_kinds=np.array([["padding", "input", "input", "padding"]]),
...     grid_text=np.full((1, 4), ""), grid_label="input", out_text=np.full((1, 2), ""),
...     out_label="output", windows=[[(0, 0), (0, 1), (0, 2)], [(0, 1), (0, 2), (0, 3)]],
...     weight_text=["", "", ""], caption=["a caption"], steps=["step 1", "step 2"])
>>> frames = draw_frames(scene)
>>> len(frames), frames[0].size == layout(scene).size
(2, True)
>>> frames[1].getpixel(layout(scene).output_inner(0, 1)) == OUTPUT_CURRENT
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Cell = tuple[int, int]
Box = tuple[int, int, int, int]
RGB = tuple[int, int, int]

BACKGROUND: RGB = (255, 255, 255)
TEXT: RGB = (25, 25, 35)
MUTED: RGB = (135, 140, 150)
INPUT_FILL: RGB = (112, 162, 226)
INPUT_LINE: RGB = (35, 75, 150)
COPY_FILL: RGB = (200, 220, 245)
COPY_LINE: RGB = (95, 130, 185)
PADDING_LINE: RGB = (120, 140, 175)
KERNEL_SHADE: RGB = (15, 40, 110)
KERNEL_LINE: RGB = (10, 25, 80)
OUTPUT_LINE: RGB = (0, 140, 150)
OUTPUT_DONE: RGB = (150, 228, 228)
OUTPUT_CURRENT: RGB = (0, 158, 170)
WEIGHT_TEXT: RGB = (255, 225, 120)  # kernel weights in the corners of the taps

#: fill and outline (and whether dashed) of each kind of working-grid cell
CELL_STYLES: dict[str, tuple[RGB, RGB, bool]] = {
    "input": (INPUT_FILL, INPUT_LINE, False),
    "copy": (COPY_FILL, COPY_LINE, True),
    "padding": (BACKGROUND, PADDING_LINE, True),
    "inserted": (BACKGROUND, PADDING_LINE, True),
}
SHADE_ALPHA = 0.62


def footprint_fill(kind: str) -> RGB:
    """Fill of a working-grid cell of ``kind`` while a kernel tap sits on it."""
    base = np.array(CELL_STYLES[kind][0], dtype=float)
    shade = np.array(KERNEL_SHADE, dtype=float)
    return tuple(round(float(v)) for v in base + SHADE_ALPHA * (shade - base))


@functools.lru_cache(maxsize=16)
def font(size: int) -> Any:
    """Pillow's bundled font at ``size`` px (Pillow >= 10.1); the fixed bitmap font before."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow, or Pillow built without FreeType
        return ImageFont.load_default()


@dataclass(frozen=True)
class Scene:
    """Everything one animation shows; grids are 2-D (a 1-D convolution is one row).

    ``windows[f]`` lists the working-grid cells the kernel taps read in frame ``f`` (tap
    order), ``weight_text`` the kernel value drawn in the corner of each tapped cell, and
    frame ``f`` computes output cell number ``f`` in row-major order.
    """

    grid_kinds: np.ndarray
    grid_text: np.ndarray
    grid_label: str
    out_text: np.ndarray
    out_label: str
    windows: Sequence[Sequence[Cell]]
    weight_text: Sequence[str]
    caption: Sequence[str]
    steps: Sequence[str]
    cell: int = 44


@dataclass(frozen=True)
class Layout:
    """Pixel positions of a scene's grids and caption."""

    cell: int
    size: tuple[int, int]
    grid_origin: tuple[int, int]
    out_origin: tuple[int, int]
    grid_label_at: tuple[int, int]
    out_label_at: tuple[int, int]
    caption_at: tuple[int, int]
    line_height: int

    def _box(self, origin: tuple[int, int], row: int, col: int) -> Box:
        x, y = origin[0] + col * self.cell, origin[1] + row * self.cell
        return x, y, x + self.cell, y + self.cell

    def grid_box(self, row: int, col: int) -> Box:
        return self._box(self.grid_origin, row, col)

    def output_box(self, row: int, col: int) -> Box:
        return self._box(self.out_origin, row, col)

    def grid_inner(self, row: int, col: int) -> tuple[int, int]:
        """A pixel inside a grid cell clear of its outline and text (for checks)."""
        x0, y0, _, _ = self.grid_box(row, col)
        return x0 + self.cell // 7, y0 + self.cell // 7

    def output_inner(self, row: int, col: int) -> tuple[int, int]:
        x0, y0, _, _ = self.output_box(row, col)
        return x0 + self.cell // 7, y0 + self.cell // 7


#: smallest font size (px) of any text in a frame
MIN_FONT = 12


def _sizes(cell: int) -> dict[str, int]:
    """Font sizes in px: at the default 44 px cell the digits of values and kernel weights
    are 13 px tall (font size 18), readable in a GIF shown at its own size."""
    return {
        "value": max(MIN_FONT, round(cell * 0.4)),
        "weight": max(MIN_FONT, round(cell * 0.41)),
        "caption": max(MIN_FONT, round(cell * 0.34)),
        "label": max(MIN_FONT, round(cell * 0.32)),
    }


def _text_size(text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = font(size).getbbox(text or " ")
    return right - left, bottom - top


def layout(scene: Scene) -> Layout:
    """Where everything goes: the two grids side by side, or stacked when that is wider
    than it is tall (1-D), the caption below; centred in a canvas wide enough for the text."""
    c, sizes = scene.cell, _sizes(scene.cell)
    margin, gap = c // 2, c
    label_h = round(sizes["label"] * 1.6)
    (gh, gw), (oh, ow) = scene.grid_kinds.shape, scene.out_text.shape
    side = gw + ow <= 2.5 * max(gh, oh)
    if side:
        width = (gw + ow) * c + gap
        height = label_h + max(gh, oh) * c
    else:
        width = max(gw, ow) * c
        height = 2 * label_h + (oh + gh) * c + gap // 2
    line_h = round(sizes["caption"] * 1.45)
    text_w = max(_text_size(line, sizes["caption"])[0] for line in [*scene.caption, *scene.steps])
    canvas_w = max(width, text_w) + 2 * margin
    left = (canvas_w - width) // 2
    top = margin
    if side:
        grid_xy = (left, top + label_h + (max(gh, oh) - gh) * c // 2)
        out_xy = (left + gw * c + gap, top + label_h + (max(gh, oh) - oh) * c // 2)
    else:
        out_xy = (left + (width - ow * c) // 2, top + label_h)
        grid_xy = (left + (width - gw * c) // 2, out_xy[1] + oh * c + gap // 2 + label_h)
    lines = len(scene.caption) + 1
    canvas_h = top + height + margin // 2 + lines * line_h + margin // 2
    return Layout(
        cell=c,
        size=(canvas_w, canvas_h),
        grid_origin=grid_xy,
        out_origin=out_xy,
        grid_label_at=(grid_xy[0], grid_xy[1] - label_h),
        out_label_at=(out_xy[0], out_xy[1] - label_h),
        caption_at=(margin, top + height + margin // 2),
        line_height=line_h,
    )


def _dashed_rectangle(draw: Any, box: Box, colour: RGB, dash: int, width: int = 1) -> None:
    x0, y0, x1, y1 = box[0], box[1], box[2] - 1, box[3] - 1
    for start in range(x0, x1 + 1, 2 * dash):
        end = min(start + dash, x1)
        draw.line((start, y0, end, y0), fill=colour, width=width)
        draw.line((start, y1, end, y1), fill=colour, width=width)
    for start in range(y0, y1 + 1, 2 * dash):
        end = min(start + dash, y1)
        draw.line((x0, start, x0, end), fill=colour, width=width)
        draw.line((x1, start, x1, end), fill=colour, width=width)


def _centred_text(draw: Any, box: Box, text: str, size: int, colour: RGB) -> None:
    if not text:
        return
    left, top, right, bottom = font(size).getbbox(text)
    x = (box[0] + box[2] - (right - left)) // 2 - left
    y = (box[1] + box[3] - (bottom - top)) // 2 - top
    draw.text((x, y), text, font=font(size), fill=colour)


def _corner_text(draw: Any, box: Box, text: str, size: int, colour: RGB) -> None:
    _, _, right, bottom = font(size).getbbox(text)
    pad = max(2, size // 4)
    draw.text((box[2] - pad - right, box[3] - pad - bottom), text, font=font(size), fill=colour)


def value_box(box: Box) -> Box:
    """The upper-left part of a tapped cell where its value goes when the kernel weight takes
    the lower-right corner (both stay large and apart)."""
    x0, y0, x1, _ = box
    side = round((x1 - x0) * 0.62)
    return x0, y0, x0 + side, y0 + side


def _grid_cell(
    draw: Any, box: Box, kind: str, text: str, cell: int, shaded: bool, weighted: bool = False
) -> None:
    fill, line, dashed = CELL_STYLES[kind]
    value_size = _sizes(cell)["value"]
    if shaded:
        draw.rectangle(box, fill=footprint_fill(kind))
        draw.rectangle(box, outline=KERNEL_LINE, width=max(2, cell // 16))
        _centred_text(draw, value_box(box) if weighted else box, text, value_size, BACKGROUND)
        return
    draw.rectangle(box, fill=fill)
    if dashed:
        _dashed_rectangle(draw, box, line, dash=max(3, cell // 9))
    else:
        draw.rectangle(box, outline=line, width=1)
    colour = MUTED if kind in ("padding", "inserted") else TEXT
    _centred_text(draw, box, text, value_size, colour)


def _background(scene: Scene, where: Layout) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", where.size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    sizes = _sizes(scene.cell)
    draw.text(where.grid_label_at, scene.grid_label, font=font(sizes["label"]), fill=TEXT)
    draw.text(where.out_label_at, scene.out_label, font=font(sizes["label"]), fill=TEXT)
    for row, col in np.ndindex(scene.grid_kinds.shape):
        box = where.grid_box(row, col)
        kind, text = str(scene.grid_kinds[row, col]), str(scene.grid_text[row, col])
        _grid_cell(draw, box, kind, text, scene.cell, shaded=False)
    for row, col in np.ndindex(scene.out_text.shape):
        draw.rectangle(where.output_box(row, col), fill=BACKGROUND, outline=OUTPUT_LINE)
    x, y = where.caption_at
    for number, line in enumerate(scene.caption):
        draw.text((x, y + number * where.line_height), line, font=font(sizes["caption"]), fill=TEXT)
    return image


def _output_cell(draw: Any, box: Box, text: str, cell: int, current: bool) -> None:
    fill = OUTPUT_CURRENT if current else OUTPUT_DONE
    draw.rectangle(
        box,
        fill=fill,
        outline=OUTPUT_LINE if not current else KERNEL_LINE,
        width=max(2, cell // 16) if current else 1,
    )
    _centred_text(draw, box, text, _sizes(cell)["value"], BACKGROUND if current else TEXT)


def _extent_box(where: Layout, cells: Sequence[Cell]) -> Box:
    rows, cols = [r for r, _ in cells], [c for _, c in cells]
    x0, y0, _, _ = where.grid_box(min(rows), min(cols))
    _, _, x1, y1 = where.grid_box(max(rows), max(cols))
    return x0, y0, x1, y1


def draw_frames(scene: Scene) -> list[Any]:
    """One RGB ``PIL.Image`` per frame (output position)."""
    from PIL import ImageDraw

    where = layout(scene)
    base = _background(scene, where)
    out_cells = list(np.ndindex(scene.out_text.shape))
    sizes = _sizes(scene.cell)
    frames = []
    done = base.copy()  # output cells computed in earlier frames accumulate here
    for number, (window, step) in enumerate(zip(scene.windows, scene.steps, strict=True)):
        current = out_cells[number]
        frame = done.copy()
        draw = ImageDraw.Draw(frame)
        if len(window) > 1:  # the whole receptive field, so dilation gaps read as gaps
            _dashed_rectangle(
                draw, _extent_box(where, window), KERNEL_LINE, dash=max(3, scene.cell // 9), width=2
            )
        for (row, col), weight in zip(window, scene.weight_text, strict=True):
            box = where.grid_box(row, col)
            kind, text = str(scene.grid_kinds[row, col]), str(scene.grid_text[row, col])
            _grid_cell(draw, box, kind, text, scene.cell, shaded=True, weighted=bool(weight))
            if weight:
                _corner_text(draw, box, weight, sizes["weight"], WEIGHT_TEXT)
        _output_cell(
            draw, where.output_box(*current), str(scene.out_text[current]), scene.cell, current=True
        )
        x, y = where.caption_at
        draw.text(
            (x, y + len(scene.caption) * where.line_height),
            step,
            font=font(sizes["caption"]),
            fill=TEXT,
        )
        frames.append(frame)
        _output_cell(
            ImageDraw.Draw(done),
            where.output_box(*current),
            str(scene.out_text[current]),
            scene.cell,
            current=False,
        )
    return frames
