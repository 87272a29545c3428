"""Arrays of pictures as one picture: display scaling and tiling (NumPy only, no matplotlib).

>>> import numpy as np
>>> tile(np.zeros((5, 4, 6)), gap=1).shape  # 5 maps -> 2 rows x 3 columns
(9, 20)
>>> to_unit_range(np.array([-2.0, 0.0, 2.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math

import numpy as np


def to_unit_range(values: np.ndarray, keep_unit: bool = True) -> np.ndarray:
    """``values`` as float32 in ``[0, 1]`` for display.

    With ``keep_unit``, arrays already inside ``[0, 1]`` (images, sigmoid outputs) are kept as
    they are, so their brightness stays meaningful; anything else is min-max scaled.  A
    constant array that needs scaling becomes mid grey.  NaN and infinities become 0.
    """
    array = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if array.size == 0:
        return array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if keep_unit and low >= 0.0 and high <= 1.0:
        return array.astype(np.float32)
    if high == low:
        return np.full(array.shape, 0.5, dtype=np.float32)
    return ((array - low) / (high - low)).astype(np.float32)


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """``(rows, columns)`` of a near-square grid holding ``count`` cells.

    >>> grid_shape(4), grid_shape(5), grid_shape(7, columns=7)
    ((2, 2), (2, 3), (1, 7))
    """
    if count < 1:
        raise ValueError(f"a grid needs at least one cell, got {count}")
    cols = columns if columns is not None else math.ceil(math.sqrt(count))
    cols = max(1, min(cols, count))
    return math.ceil(count / cols), cols


def tile(
    maps: np.ndarray, columns: int | None = None, gap: int = 2, fill: float = 1.0
) -> np.ndarray:
    """Tile ``(N, H, W)`` maps into one ``(H', W')`` picture, or ``(N, C, H, W)`` into
    ``(C, H', W')``, row by row, with ``gap`` pixels of ``fill`` between the cells.

    >>> import numpy as np
    >>> tile(np.arange(4.0).reshape(4, 1, 1), gap=0)
    array([[0., 1.],
           [2., 3.]])
    """
    maps = np.asarray(maps)
    if maps.ndim not in (3, 4):
        raise ValueError(f"tile expects (N, H, W) or (N, C, H, W) maps, got shape {maps.shape}")
    rows, cols = grid_shape(maps.shape[0], columns)
    height, width = maps.shape[-2:]
    lead = maps.shape[1:-2]
    out = np.full(
        (*lead, rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap),
        fill,
        dtype=maps.dtype if maps.dtype.kind == "f" else np.float32,
    )
    for index, picture in enumerate(maps):
        r, c = divmod(index, cols)
        top, left = r * (height + gap), c * (width + gap)
        out[..., top : top + height, left : left + width] = picture
    return out
