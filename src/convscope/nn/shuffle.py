"""Rearranging layers: ``PixelShuffle``, ``PixelUnshuffle``, ``ChannelShuffle`` and their
functional forms; reshapes and permutations, so gradients come from autograd.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> nn.PixelShuffle(2)(cs.zeros(1, 8, 3, 3)).shape
(1, 2, 6, 6)
>>> nn.PixelUnshuffle(2)(cs.zeros(1, 2, 6, 6)).shape
(1, 8, 3, 3)
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .module import Module


def _as_tensor(input: Any) -> Tensor:
    return input if isinstance(input, Tensor) else Tensor(input)


def pixel_shuffle(input: Any, upscale_factor: int) -> Tensor:
    """``(*, C*r*r, H, W) -> (*, C, H*r, W*r)`` (sub-pixel convolution's rearrangement)."""
    x, r = _as_tensor(input), upscale_factor
    if x.ndim < 3:
        raise RuntimeError(
            f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
            f"{x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if c % (r * r):
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
            f"of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    k = len(lead)
    y = x.reshape((*lead, c // (r * r), r, r, h, w))
    y = y.permute((*range(k), k, k + 3, k + 1, k + 4, k + 2))
    return y.reshape((*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Any, downscale_factor: int) -> Tensor:
    """``(*, C, H*r, W*r) -> (*, C*r*r, H, W)``, the inverse of :func:`pixel_shuffle`."""
    x, r = _as_tensor(input), downscale_factor
    if x.ndim < 3:
        raise RuntimeError(
            f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
            f"{x.ndim} dimension(s)"
        )
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    for name, size, axis in (("height", h, -2), ("width", w, -1)):
        if size % r:
            raise RuntimeError(
                f"pixel_unshuffle expects {name} to be divisible by downscale_factor, but "
                f"input.size({axis})={size} is not divisible by {r}"
            )
    k = len(lead)
    y = x.reshape((*lead, c, h // r, r, w // r, r))
    y = y.permute((*range(k), k, k + 2, k + 4, k + 1, k + 3))
    return y.reshape((*lead, c * r * r, h // r, w // r))


def channel_shuffle(input: Any, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet): ``(N, g*k, ...)`` read as
    ``(N, g, k, ...)`` and transposed to ``(N, k, g, ...)``."""
    x = _as_tensor(input)
    if groups <= 0:
        raise RuntimeError(
            f"Number of groups to divide channels in must be positive. Value of groups:{groups}"
        )
    c = x.shape[1]
    if c % groups:
        raise RuntimeError(
            f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups."
        )
    n, rest = x.shape[0], x.shape[2:]
    y = x.reshape((n, groups, c // groups, *rest)).transpose(1, 2)
    return y.reshape((n, c, *rest))


class PixelShuffle(Module):
    """Rearrange ``(N, C*r*r, H, W)`` to ``(N, C, H*r, W*r)``.

    >>> PixelShuffle(3)
    PixelShuffle(upscale_factor=3)
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """Rearrange ``(N, C, H*r, W*r)`` to ``(N, C*r*r, H, W)``.

    >>> PixelUnshuffle(2)
    PixelUnshuffle(downscale_factor=2)
    """

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class ChannelShuffle(Module):
    """Interleave channel groups (ShuffleNet).

    >>> ChannelShuffle(2)
    ChannelShuffle(groups=2)
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
