"""``Dropout``: random zeroing while training, the identity in evaluation mode.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> drop = nn.Dropout(p=0.5)
>>> drop.eval()(cs.ones(3)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the others by ``1/(1-p)`` in training.

    Randomness comes from ``convscope.random.default_generator()`` (seed it with
    ``cs.manual_seed``).

    >>> import convscope as cs
    >>> _ = cs.manual_seed(1)
    >>> Dropout(p=0.5)
    Dropout(p=0.5, inplace=False)
    >>> set(Dropout(p=0.5)(cs.ones(50)).tolist()) == {0.0, 2.0}
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _ChannelDropout(Dropout):
    _function = ""

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return getattr(F, self._function)(input, self.p, self.training, self.inplace)


class Dropout1d(_ChannelDropout):
    """Zero whole channels of ``(N, C, L)`` in training.

    >>> Dropout1d(0.2)
    Dropout1d(p=0.2, inplace=False)
    """

    _function = "dropout1d"


class Dropout2d(_ChannelDropout):
    """Zero whole channels of ``(N, C, H, W)`` in training.

    >>> Dropout2d()
    Dropout2d(p=0.5, inplace=False)
    """

    _function = "dropout2d"


class Dropout3d(_ChannelDropout):
    """Zero whole channels of ``(N, C, D, H, W)`` in training.

    >>> Dropout3d()
    Dropout3d(p=0.5, inplace=False)
    """

    _function = "dropout3d"
