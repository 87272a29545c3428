"""A ``Conv2d`` over an image too big to convolve at once: bands of output rows in bounded memory.

The image stays decoded as Pillow holds it (:class:`~convscope.io.image.ImageRows`); each band
of output rows reads the input rows its receptive field needs (the halo), padding rows included
(taken with ``ops.pad.source_index``, so every padding mode is the layer's own), pads the
columns with ``F.pad`` and runs the layer's convolution with its own weights.  Output channels
become 8-bit pictures band by band (``minmax`` takes each map's range from a first pass), and
the contact sheet gets block means of the maps, the averaging it would do itself.  Memory:
the decoded image, the pictures of a block of channels, and bands and workspace sized from the
budget (:func:`plan_bands`).

>>> import numpy as np
>>> from convscope import nn
>>> from convscope.apps.image import feature_maps, random_conv
>>> pixels = np.random.default_rng(0).random((3, 9, 7), dtype=np.float32)
>>> conv = random_conv(seed=1, out_channels=2, kernel_size=3, padding=1,
...                    padding_mode="reflect")
>>> rows = lambda start, stop: pixels[:, start:stop]
>>> band = conv_rows(conv, rows, (9, 7), 4, 6)     # output rows 4 and 5
>>> bool(np.allclose(band, feature_maps(pixels, conv, activation="none")[:, 4:6], atol=1e-6))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .. import geometry, nn
from ..autograd import no_grad
from ..dask.halo import valid_window
from ..io.image import to_pixels
from ..nn import functional as F
from ..ops import pad as _pad
from ..ops.workspace import workspace_budget
from ..tensor import Tensor
from . import image as image_app

#: ``rows(start, stop)`` -> the image's rows ``[start, stop)`` as ``(3, rows, W)`` float32
RowReader = Callable[[int, int], np.ndarray]
#: bytes a decoded pixel may take in Pillow (RGB and RGBA images use four)
DECODED_BYTES = 4


def available_bytes() -> int | None:
    """The memory the system can still give (``MemAvailable`` of ``/proc/meminfo``), or
    ``None`` where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def banded_bytes(conv: nn.Conv2d, size: tuple[int, int], budget: int) -> int:
    """The most a banded run holds: the decoded image, one output channel's 8-bit picture
    (blocks of more come out of the budget) and the budget.

    >>> from convscope.apps.image import random_conv
    >>> banded_bytes(random_conv(), (7000, 7000), 512 << 20) >> 20
    745
    """
    out_h, out_w = image_app.output_size(conv, *size)
    return DECODED_BYTES * size[0] * size[1] + out_h * out_w + budget


def _pairs(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """The layer's padding as (before, after) pairs for an input of ``size`` (H, W)."""
    return geometry.resolve_padding(
        geometry.normalize_padding(conv.padding, 2, "conv2d"),
        size,
        conv.kernel_size,
        conv.stride,
        conv.dilation,
    )


def check_layer(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[int, int]:
    """The ``(H', W')`` of ``conv`` on an ``H x W`` image; PyTorch's ``RuntimeError`` when the
    layer cannot pad or convolve it (as the whole-image call would raise)."""
    mode = _pad.LAYER_MODES[conv.padding_mode]
    _pad.check_pad((1, conv.in_channels, *size), _pairs(conv, size), mode)
    return image_app.output_size(conv, *size)


def _window(read: RowReader, sources: np.ndarray) -> np.ndarray:
    """Input rows ``sources`` (-1: a zero row), reading each run of consecutive rows once."""
    needed = np.unique(sources[sources >= 0])
    if needed.size == 0:
        probe = read(0, 1)
        return np.zeros((probe.shape[0], sources.size, probe.shape[2]), probe.dtype)
    runs = np.split(needed, np.flatnonzero(np.diff(needed) != 1) + 1)
    parts = [read(int(run[0]), int(run[-1]) + 1) for run in runs]
    block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    where = np.searchsorted(needed, np.maximum(sources, needed[0]))
    if np.array_equal(where, np.arange(block.shape[1])) and (sources >= 0).all():
        return block
    window = np.take(block, where, axis=1)
    window[:, sources < 0] = 0
    return window


def conv_rows(
    conv: nn.Conv2d,
    read: RowReader,
    size: tuple[int, int],
    start: int,
    stop: int,
    channels: slice = slice(None),
) -> np.ndarray:
    """Output rows ``[start, stop)`` of ``conv``'s output ``channels`` (``(C, stop - start,
    W')`` float32) on the ``H x W`` (``size``) RGB image whose rows ``read`` gives; a
    one-channel layer sees the luminance, as :func:`convscope.apps.image.feature_maps` does.
    Only the channels asked for are computed when the layer has one group."""
    (top, bottom), (left, right) = _pairs(conv, size)
    extent = geometry.receptive_extent(conv.kernel_size, conv.dilation)[0]
    lo, hi = valid_window(start, stop, conv.stride[0], extent)
    mode = _pad.LAYER_MODES[conv.padding_mode]
    sources = _pad.source_index(size[0], top, bottom, mode)[lo:hi]
    x = image_app.prepare(_window(read, sources)[None], conv)
    weight, bias = conv.weight.data, None if conv.bias is None else conv.bias.data
    if conv.groups == 1:
        weight, bias = weight[channels], None if bias is None else bias[channels]
    with no_grad():
        window = Tensor(np.ascontiguousarray(x))
        if left or right:
            window = F.pad(window, (left, right, 0, 0), mode=mode)
        y = conv._conv()(window, weight, bias, conv.stride, 0, conv.dilation, conv.groups)
    return y.numpy()[0] if conv.groups == 1 else y.numpy()[0, channels]


def block_means(values: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor x factor`` blocks of ``(..., H, W)`` in float64 (rows and columns
    that do not fill a block dropped), as the contact sheet shrinks a picture for display.

    >>> block_means(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    values = np.asarray(values, dtype=np.float64)
    if factor <= 1:
        return values
    *lead, height, width = values.shape
    h, w = height // factor, width // factor
    cut = values[..., : h * factor, : w * factor].reshape(*lead, h, factor, w, factor)
    return cut.mean(axis=(-3, -1))


def display_factor(size: tuple[int, int]) -> int:
    """The contact sheet's averaging factor for a picture of ``size`` (see
    ``viz.sheets.shrink_for_display``)."""
    from ..viz.sheets import DISPLAY_PIXELS

    return max(1, math.ceil(max(size) / DISPLAY_PIXELS))


@dataclass(frozen=True)
class BandPlan:
    """Output rows per band (a multiple of ``align``), output channels turned into pictures
    per pass over the bands, and the workspace the convolution of a band may use."""

    rows: int
    channels: int
    workspace: int


def plan_bands(conv: nn.Conv2d, size: tuple[int, int], budget: int, align: int = 1) -> BandPlan:
    """Bands and channel blocks within ``budget`` bytes: half for the convolution's workspace,
    a quarter for a band (its input window, output and conversion temporaries) and a quarter
    for the pictures of a block of channels (at least one row of blocks and one channel).

    >>> from convscope.apps.image import random_conv
    >>> plan_bands(random_conv(), (7000, 7000), 512 << 20)
    BandPlan(rows=207, channels=2, workspace=268435456)
    """
    out_h, out_w = image_app.output_size(conv, *size)
    width, stride = size[1], conv.stride[0]
    extent = geometry.receptive_extent(conv.kernel_size, conv.dilation)[0]
    per_input_row = width * (12 + 8 * conv.in_channels)  # RGB band, layer input, padded copy
    per_output_row = out_w * (8 * conv.out_channels + 24)  # output twice, one map's temporaries

    def cost(rows: int) -> int:
        return ((rows - 1) * stride + extent) * per_input_row + rows * per_output_row

    lo, hi = 1, max(1, out_h)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget // 4 else (lo, mid - 1)
    rows = max(align, lo // align * align)
    channels = max(1, min(conv.out_channels, budget // 4 // max(1, out_h * out_w)))
    return BandPlan(rows, channels, max(1, budget // 2))


@dataclass
class SheetMaps:
    """What the contact sheet and TensorBoard get of a banded run: block means of the picture
    (``(3, h, w)``), of the raw maps and of the activated maps, and the activated maps' mean
    and standard deviation over every value."""

    picture: np.ndarray
    raw: np.ndarray
    activated: np.ndarray | None
    factor: int
    ranges: np.ndarray  # (C, 2): each raw map's finite minimum and maximum
    mean: float = math.nan
    std: float = math.nan


@dataclass
class BandedConv:
    """``conv`` then ``activation`` on one big image, band by band: :meth:`pictures` yields
    every output channel's 8-bit picture (equal, value for value, to ``to_pixels`` of
    ``activate`` of the whole output) and, with ``means``, fills :attr:`sheet` on the way
    (block means of the activated maps too with ``want_activated``)."""

    conv: nn.Conv2d
    image: object  # an ImageRows (or anything with height, width, rows(start, stop))
    activation: str
    budget: int
    want_activated: bool = False
    means: bool = True
    sheet: SheetMaps | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.size = (self.image.height, self.image.width)
        self.out_size = check_layer(self.conv, self.size)
        self.factor = display_factor(self.out_size)
        while self.means_bytes > self.budget // 4 and self.factor < max(self.out_size):
            self.factor += 1  # many maps: coarser means for the sheet, within the budget
        self.plan = plan_bands(self.conv, self.size, self.budget, self.factor)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.conv.out_channels, *self.out_size)

    @property
    def means_bytes(self) -> int:
        """Bytes the block means for the sheet take (collected per band, then joined)."""
        if not self.means:
            return 0
        cells = (self.out_size[0] // self.factor) * (self.out_size[1] // self.factor)
        return self.conv.out_channels * cells * 8 * 2 * (2 if self.want_activated else 1)

    def _bands(self, channels: slice = slice(None)) -> Iterator[tuple[int, int, np.ndarray]]:
        height = self.out_size[0]
        with workspace_budget(self.plan.workspace):
            for start in range(0, height, self.plan.rows):
                stop = min(start + self.plan.rows, height)
                raw = conv_rows(self.conv, self.image.rows, self.size, start, stop, channels)
                yield start, stop, raw

    def _limits(self) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per channel ``(low, span)`` of the whole map for ``minmax`` (one pass), else None."""
        if self.activation != "minmax":
            return [None] * self.conv.out_channels
        low = high = None
        for _, _, raw in self._bands():
            band_low, band_high = raw.min(axis=(1, 2)), raw.max(axis=(1, 2))
            low = band_low if low is None else np.minimum(low, band_low)
            high = band_high if high is None else np.maximum(high, band_high)
        return [(low[c], high[c] - low[c]) for c in range(self.conv.out_channels)]

    def _picture_means(self) -> np.ndarray:
        factor = display_factor(self.size)
        rows = max(factor, (1 << 20) // max(1, self.size[1]) // factor * factor)
        parts = [
            block_means(self.image.rows(start, min(start + rows, self.size[0])), factor)
            for start in range(0, self.size[0], rows)
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def pictures(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(channel, (H', W') uint8 picture)`` for every output channel in order."""
        self.limits = limits = self._limits()
        channels, (height, width) = self.conv.out_channels, self.out_size
        raw_means, act_means, total, squares = [], [], 0.0, 0.0
        ranges = np.full((channels, 2), (np.inf, -np.inf))
        for first in range(0, channels, self.plan.channels):
            block = range(first, min(first + self.plan.channels, channels))
            pictures = np.empty((len(block), height, width), np.uint8)
            whole = first == 0 and self.means  # every channel, for the means and ranges
            offset = 0 if whole else first
            wanted = slice(None) if whole else slice(first, block.stop)
            for start, stop, raw in self._bands(wanted):
                every = whole and self.want_activated
                for c in range(channels) if every else block:
                    values = image_app.activate(raw[c - offset], self.activation, limits[c])
                    if c in block:
                        pictures[c - first, start:stop] = to_pixels(values)
                    if every:
                        act_means.append((c, start, block_means(values, self.factor)))
                        total += float(values.sum(dtype=np.float64))
                        squares += float(np.square(values, dtype=np.float64).sum())
                if whole:
                    raw_means.append(block_means(raw, self.factor))
                    ranges = _finite_ranges(raw, ranges)
            if whole:
                self.sheet = self._sheet(raw_means, act_means, ranges, total, squares)
            yield from zip(block, pictures, strict=True)

    def shown_ranges(self, scale: str) -> np.ndarray:
        """Each map's ``(low, high)`` as the sheet's ``scale`` draws it: the raw maps' finite
        ranges, or for ``activation`` their images under the (monotone) activation."""
        ranges = self.sheet.ranges
        if scale != "activation":
            return ranges
        shown = np.stack(
            [
                image_app.activate(pair.astype(np.float32)[None], self.activation, limit)[0]
                for pair, limit in zip(ranges, self.limits, strict=True)
            ]
        )
        return np.clip(shown, 0.0, 1.0) if self.activation == "none" else shown

    def _sheet(
        self, raw_means: list, act_means: list, ranges: np.ndarray, total: float, squares: float
    ) -> SheetMaps:
        raw = np.concatenate(raw_means, axis=1)
        activated = None
        if act_means:
            activated = np.stack(
                [
                    np.concatenate([m for c, _, m in act_means if c == channel], axis=0)
                    for channel in range(self.conv.out_channels)
                ]
            )
        count = math.prod(self.shape)
        mean = total / count
        std = math.sqrt(max(squares / count - mean * mean, 0.0))
        ranges[ranges[:, 0] > ranges[:, 1]] = 0.0  # no finite value: (0, 0), as the sheet says
        picture = self._picture_means()
        return SheetMaps(picture, raw, activated, self.factor, ranges, mean, std)


def _finite_ranges(raw: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``ranges`` ((C, 2) finite minimum and maximum so far) widened by the band ``raw``."""
    low, high = raw.min(axis=(1, 2)), raw.max(axis=(1, 2))
    for c in np.flatnonzero(~(np.isfinite(low) & np.isfinite(high))):
        finite = raw[c][np.isfinite(raw[c])]
        low[c], high[c] = (finite.min(), finite.max()) if finite.size else (np.inf, -np.inf)
    return np.stack([np.minimum(ranges[:, 0], low), np.maximum(ranges[:, 1], high)], axis=1)
