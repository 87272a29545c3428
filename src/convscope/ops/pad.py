"""Array-level padding of the trailing dimensions: constant, reflect, replicate, circular.

Pads are ``(before, after)`` pairs for the last ``len(pairs)`` dimensions, first dimension
first.  Negative amounts crop, and cropping happens before padding (PyTorch's order).

>>> import numpy as np
>>> from convscope.ops.pad import pad
>>> pad(np.arange(4), [(2, 1)], "reflect")
array([2, 1, 0, 1, 2, 3, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_MODE = {
    "constant": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def _cropped(array: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    lead = array.ndim - len(pairs)
    index = [slice(None)] * lead
    for (lo, hi), size in zip(pairs, array.shape[lead:], strict=True):
        index.append(slice(max(-lo, 0), size - max(-hi, 0)))
    return array[tuple(index)]


def check_pad(shape: Sequence[int], pairs: Sequence[tuple[int, int]], mode: str) -> None:
    """Raise ``RuntimeError`` if ``mode`` cannot pad ``shape`` by ``pairs`` (nothing computed)."""
    lead = len(shape) - len(pairs)
    for axis, ((lo, hi), size) in enumerate(zip(pairs, shape[lead:], strict=True), start=lead):
        kept = size - max(-lo, 0) - max(-hi, 0)
        grow = (max(lo, 0), max(hi, 0))
        if kept + grow[0] + grow[1] < 0 or kept < 0:
            raise RuntimeError(
                f"The input size {size}, plus negative padding {lo} and {hi} resulted in a "
                f"negative output size, which is invalid. Check dimension {axis} of your input."
            )
        if mode == "reflect" and (grow[0] >= kept or grow[1] >= kept) and any(grow):
            raise RuntimeError(
                f"Padding size should be less than the corresponding input dimension, but got: "
                f"padding ({lo}, {hi}) at dimension {axis} of input {list(shape)}"
            )
        if mode == "circular" and (grow[0] > kept or grow[1] > kept):
            raise RuntimeError(
                f"Padding value causes wrapping around more than once: padding ({lo}, {hi}) at "
                f"dimension {axis} of input {list(shape)}"
            )
        if mode == "replicate" and kept == 0 and any(grow):
            raise RuntimeError(
                f"replicate padding needs a non-empty dimension {axis} to copy from, but the "
                f"input is {list(shape)}"
            )


def pad(
    array: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    mode: str = "constant",
    value: float = 0,
) -> np.ndarray:
    """Pad (or crop, for negative amounts) the trailing dimensions of ``array``."""
    pairs = [(int(lo), int(hi)) for lo, hi in pairs]
    check_pad(array.shape, pairs, mode)
    cropped = _cropped(array, pairs)
    widths = [(0, 0)] * (array.ndim - len(pairs)) + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if not any(lo or hi for lo, hi in widths):
        return cropped.copy()
    if mode == "constant":
        out = np.full(
            [s + lo + hi for s, (lo, hi) in zip(cropped.shape, widths, strict=True)],
            value,
            dtype=array.dtype,
        )
        out[tuple(slice(lo, lo + s) for s, (lo, _) in zip(cropped.shape, widths, strict=True))] = (
            cropped
        )
        return out
    return np.pad(cropped, widths, mode=_NUMPY_MODE[mode])
