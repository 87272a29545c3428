"""Classic 3x3 image filters (Sobel, Laplacian, Gaussian...) as the weights of a ``Conv2d``.

Kernels are applied as written, like ``Conv2d`` does (cross-correlation, no flip): ``sobel-x``
is positive where brightness increases to the right, ``sobel-y`` where it increases downwards.

Two ways to map the filters of an RGB image to channels (one output channel per filter, or
three):

* ``"luminance"`` (default): every filter sees the brightness
  ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).  By linearity this is one ordinary
  ``Conv2d(3, n)`` whose weight for input channel c is ``luma[c] * filter``.
* ``"each"``: every filter runs on every colour channel separately: a grouped
  ``Conv2d(3, 3 n, groups=3)``; output channel ``c * n + j`` is filter j on colour c.

>>> import numpy as np
>>> import convscope as cs
>>> conv = filter_conv(["sobel-x", "laplacian"], padding_mode="replicate")
>>> conv
Conv2d(3, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, \
padding_mode=replicate)
>>> edge = np.zeros((1, 3, 4, 6), dtype=np.float32); edge[..., 3:] = 1  # dark | bright
>>> with cs.no_grad():
...     out = conv(cs.from_numpy(edge)).numpy()
>>> out[0, 0, 1].round(3).tolist()  # sobel-x along a row: only the two columns at the edge
[0.0, 0.0, 4.0, 4.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import nn

#: ITU-R BT.601 luma weights of R, G, B
LUMA = (0.299, 0.587, 0.114)
FILTER_INPUTS = ("luminance", "each")
COLOURS = ("R", "G", "B")

#: name -> (3x3 kernel, what it does)
FILTERS: dict[str, tuple[tuple[tuple[float, ...], ...], str]] = {
    "identity": (((0, 0, 0), (0, 1, 0), (0, 0, 0)), "copies the input"),
    "box": (((1 / 9,) * 3,) * 3, "3x3 mean: blurs"),
    "gaussian": (
        tuple(tuple(a * b / 16 for b in (1, 2, 1)) for a in (1, 2, 1)),
        "binomial 3x3 (sigma ~ 0.85): smooth blur",
    ),
    "sharpen": (((0, -1, 0), (-1, 5, -1), (0, -1, 0)), "identity + negative Laplacian"),
    "laplacian": (((0, 1, 0), (1, -4, 1), (0, 1, 0)), "second derivative: edges, both sides"),
    "outline": (((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)), "8-neighbour Laplacian, negated"),
    "sobel-x": (((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)), "horizontal gradient: vertical edges"),
    "sobel-y": (((-1, -2, -1), (0, 0, 0), (1, 2, 1)), "vertical gradient: horizontal edges"),
    "prewitt-x": (((-1, 0, 1),) * 3, "horizontal gradient, unweighted"),
    "prewitt-y": (((-1, -1, -1), (0, 0, 0), (1, 1, 1)), "vertical gradient, unweighted"),
    "emboss": (((-2, -1, 0), (-1, 1, 1), (0, 1, 2)), "relief lit from the bottom right"),
}


def kernel(name: str) -> np.ndarray:
    """The 3x3 kernel of the classic filter ``name`` as float32.

    >>> kernel("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]], dtype=float32)
    """
    try:
        return np.array(FILTERS[name][0], dtype=np.float32)
    except KeyError:
        raise ValueError(
            f"unknown filter {name!r} (choose from {', '.join(FILTERS)}, or all)"
        ) from None


def parse_filters(text: str | Sequence[str]) -> list[str]:
    """``"sobel-x, Laplacian"`` -> ``['sobel-x', 'laplacian']``; ``"all"`` -> every filter.

    >>> parse_filters("Sobel-X,sobel-y")
    ['sobel-x', 'sobel-y']
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip().lower() for p in parts if p.strip()]
    if names == ["all"]:
        return list(FILTERS)
    if not names:
        raise ValueError("--filters needs at least one filter name")
    for name in names:
        kernel(name)
    return names


def filter_weight(
    names: Sequence[str], in_channels: int = 3, mode: str = "luminance"
) -> tuple[np.ndarray, int]:
    """The ``Conv2d`` weight applying ``names`` to an input of ``in_channels`` channels, and
    the ``groups`` it needs (see the module docstring for the two modes).

    >>> weight, groups = filter_weight(["sobel-x", "box"], mode="each")
    >>> weight.shape, groups
    ((6, 1, 3, 3), 3)
    """
    kernels = np.stack([kernel(n) for n in names])
    if mode == "luminance":
        luma = np.array(LUMA if in_channels == 3 else (1.0,) * in_channels, dtype=np.float32)
        if in_channels not in (1, 3):
            luma /= in_channels  # no colour model: the mean of the channels
        return kernels[:, None] * luma[None, :, None, None], 1
    if mode == "each":
        return np.tile(kernels, (in_channels, 1, 1))[:, None], in_channels
    raise ValueError(f"unknown filter input {mode!r} (choose from {', '.join(FILTER_INPUTS)})")


def channel_names(names: Sequence[str], in_channels: int = 3, mode: str = "luminance") -> list[str]:
    """A label per output channel of :func:`filter_conv`.

    >>> channel_names(["sobel-x", "box"], mode="each")
    ['sobel-x (R)', 'box (R)', 'sobel-x (G)', 'box (G)', 'sobel-x (B)', 'box (B)']
    """
    if mode == "luminance":
        return list(names)
    colours = COLOURS if in_channels == 3 else [str(c) for c in range(in_channels)]
    return [f"{name} ({colour})" for colour in colours for name in names]


def filter_conv(
    names: Sequence[str],
    in_channels: int = 3,
    mode: str = "luminance",
    *,
    stride: Any = 1,
    padding: Any = 1,
    dilation: Any = 1,
    padding_mode: str = "zeros",
) -> nn.Conv2d:
    """A bias-free ``Conv2d`` whose weights are the classic filters ``names``."""
    weight, groups = filter_weight(names, in_channels, mode)
    conv = nn.Conv2d(
        in_channels,
        weight.shape[0],
        3,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=False,
        padding_mode=padding_mode,
    )
    conv.load_state_dict({"weight": weight})
    return conv
