"""``Upsample`` and its two fixed-mode shorthands: resampling to a size or by a scale factor.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> up = nn.Upsample(scale_factor=2)
>>> up
Upsample(scale_factor=2.0, mode='nearest')
>>> up(cs.rand(1, 3, 8, 8)).shape
(1, 3, 16, 16)
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class Upsample(Module):
    """Resample ``(N, C, *spatial)`` with ``functional.interpolate`` (every mode it has).

    Like PyTorch's, the representation names the size or scale factor and the mode only.

    >>> Upsample(size=(3, 4))
    Upsample(size=(3, 4), mode='nearest')
    >>> Upsample(scale_factor=1.5, mode="bilinear", align_corners=True)
    Upsample(scale_factor=1.5, mode='bilinear')
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample`` with ``mode='nearest'`` (for 4-D input).

    >>> UpsamplingNearest2d(scale_factor=2)
    UpsamplingNearest2d(scale_factor=2.0, mode='nearest')
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample`` with ``mode='bilinear'`` and ``align_corners=True`` (for 4-D input).

    >>> import convscope as cs
    >>> UpsamplingBilinear2d(size=3)(cs.tensor([[[[0.0, 2.0]]]])).tolist()
    [[[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]]]
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
