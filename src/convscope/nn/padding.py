"""Padding layers: ``ZeroPad``, ``ConstantPad``, ``ReflectionPad``, ``ReplicationPad`` and
``CircularPad`` for 1, 2 and 3 spatial dimensions, all one class over ``functional.pad``.

``padding`` is an int (every side) or PyTorch's tuple ``(left, right, top, bottom, front,
back)``, last dimension first.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> nn.ZeroPad2d((1, 1, 2, 0))(cs.ones(1, 1, 2, 2)).shape
(1, 1, 4, 4)
>>> nn.ReflectionPad1d(2)(cs.tensor([[[1.0, 2.0, 3.0]]])).tolist()
[[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]]
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class _PadNd(Module):
    _dims = 0
    _mode = "constant"

    def __init__(self, padding: Any, value: float = 0.0) -> None:
        super().__init__()
        sides = 2 * self._dims
        if isinstance(padding, int):
            padding = (padding,) * sides
        padding = tuple(padding)
        if len(padding) != sides or not all(isinstance(p, int) for p in padding):
            raise ValueError(
                f"{type(self).__name__} expects padding as an int or {sides} ints, got {padding}"
            )
        self.padding, self.value = padding, value

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        if self._mode == "constant":
            return F.pad(input, list(self.padding), "constant", self.value)
        return F.pad(input, list(self.padding), self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: Any, value: float) -> None:
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_PadNd):
    def __init__(self, padding: Any) -> None:
        super().__init__(padding, 0.0)


def _layer(base: type, dims: int, mode: str, name: str, doc: str) -> type:
    return type(
        name, (base,), {"_dims": dims, "_mode": mode, "__doc__": doc, "__module__": __name__}
    )


ZeroPad1d = _layer(_ZeroPadNd, 1, "constant", "ZeroPad1d", "Zeros around ``(N, C, L)``.")
ZeroPad2d = _layer(_ZeroPadNd, 2, "constant", "ZeroPad2d", "Zeros around ``(N, C, H, W)``.")
ZeroPad3d = _layer(_ZeroPadNd, 3, "constant", "ZeroPad3d", "Zeros around ``(N, C, D, H, W)``.")
ConstantPad1d = _layer(_ConstantPadNd, 1, "constant", "ConstantPad1d", "``value`` around L.")
ConstantPad2d = _layer(_ConstantPadNd, 2, "constant", "ConstantPad2d", "``value`` around H, W.")
ConstantPad3d = _layer(_ConstantPadNd, 3, "constant", "ConstantPad3d", "``value`` around D, H, W.")
ReflectionPad1d = _layer(_PadNd, 1, "reflect", "ReflectionPad1d", "Mirror (edge not repeated).")
ReflectionPad2d = _layer(_PadNd, 2, "reflect", "ReflectionPad2d", "Mirror (edge not repeated).")
ReflectionPad3d = _layer(_PadNd, 3, "reflect", "ReflectionPad3d", "Mirror (edge not repeated).")
ReplicationPad1d = _layer(_PadNd, 1, "replicate", "ReplicationPad1d", "Repeat the edge cells.")
ReplicationPad2d = _layer(_PadNd, 2, "replicate", "ReplicationPad2d", "Repeat the edge cells.")
ReplicationPad3d = _layer(_PadNd, 3, "replicate", "ReplicationPad3d", "Repeat the edge cells.")
CircularPad1d = _layer(_PadNd, 1, "circular", "CircularPad1d", "Wrap around (periodic).")
CircularPad2d = _layer(_PadNd, 2, "circular", "CircularPad2d", "Wrap around (periodic).")
CircularPad3d = _layer(_PadNd, 3, "circular", "CircularPad3d", "Wrap around (periodic).")
