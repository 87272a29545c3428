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

#: a convolution layer's ``padding_mode`` -> the ``pad`` mode that implements it (the one
#: table every layer, explanation, animation and command reads)
LAYER_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
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
        grows = lo > 0 or hi > 0
        where = f"padding ({lo}, {hi}) at dimension {axis} of input {list(shape)}"
        if size + lo + hi < 0 or (kept < 0 and mode in ("constant", "circular")):
            raise RuntimeError(
                f"The input size {size}, plus negative padding {lo} and {hi} resulted in a "
                f"negative output size, which is invalid. Check dimension {axis} of your input."
            )
        if mode == "reflect" and (lo >= size or hi >= size) and grows:
            raise RuntimeError(
                f"Padding size should be less than the corresponding input dimension, but got: "
                f"{where}"
            )
        if mode == "replicate" and size == 0 and grows:
            raise RuntimeError(f"replicate padding needs a non-empty dimension to copy: {where}")
        # PyTorch copies circular padding from the cropped centre; wider pads would read
        # cells that are not there (it returns uninitialised memory), so they are refused
        if mode == "circular" and grows and (lo > kept or hi > kept or kept == 0):
            raise RuntimeError(
                f"Padding value causes wrapping around more than once ({kept} cells remain after "
                f"cropping): {where}"
            )


def _check_not_emptied(shape: Sequence[int], pairs: Sequence[tuple[int, int]], mode: str) -> None:
    lead = len(shape) - len(pairs)
    out = [size + lo + hi for size, (lo, hi) in zip(shape[lead:], pairs, strict=True)]
    if mode in ("reflect", "replicate") and pairs and all(v == 0 for v in out):
        raise RuntimeError(
            f"input {list(shape)} is too small: {mode} padding {list(pairs)} leaves output "
            f"size {out}"
        )


def source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each cell of one padded dimension, the input cell it copies (-1: the constant).

    Negative amounts crop.  Reflect and replicate index the original input (so a cropped
    side still reflects across the true border); circular wraps within the cropped part.
    These are PyTorch's semantics.
    """
    out = np.arange(size + before + after)
    if mode == "circular":
        start = max(-before, 0)
        kept = size - start - max(-after, 0)
        return (out - max(before, 0)) % max(kept, 1) + start
    u = out - before
    if mode == "reflect":
        u = np.abs(u)
        return np.where(u >= size, 2 * (size - 1) - u, u)
    if mode == "replicate":
        return np.clip(u, 0, size - 1)
    return np.where((u >= 0) & (u < size), u, -1)


def pad_backward(
    grad: np.ndarray, shape: Sequence[int], pairs: Sequence[tuple[int, int]], mode: str
) -> np.ndarray:
    """The adjoint of :func:`pad`: every padded cell's gradient flows back to the input cell it
    copied (accumulating where one cell was copied several times); constant cells drop out."""
    lead = len(shape) - len(pairs)
    for axis in reversed(range(lead, len(shape))):
        lo, hi = pairs[axis - lead]
        index = source_index(shape[axis], lo, hi, mode)
        moved = np.moveaxis(grad, axis, 0)
        back = np.zeros((shape[axis], *moved.shape[1:]), dtype=grad.dtype)
        keep = index >= 0
        np.add.at(back, index[keep], moved[keep])
        grad = np.moveaxis(back, 0, axis)
    return grad


def pad(
    array: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    mode: str = "constant",
    value: float = 0,
) -> np.ndarray:
    """Pad (or crop, for negative amounts) the trailing dimensions of ``array``."""
    pairs = [(int(lo), int(hi)) for lo, hi in pairs]
    check_pad(array.shape, pairs, mode)
    _check_not_emptied(array.shape, pairs, mode)
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
    lead = array.ndim - len(pairs)
    out = array
    for axis, (lo, hi) in enumerate(pairs, start=lead):
        out = np.take(out, source_index(array.shape[axis], lo, hi, mode), axis=axis)
    return out
