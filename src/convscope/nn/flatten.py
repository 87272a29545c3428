"""``Flatten``: merge a range of dimensions (by default all but the batch dimension).

>>> import convscope as cs
>>> import convscope.nn as nn
>>> nn.Flatten()(cs.zeros(8, 16, 5, 5)).shape
(8, 400)
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` into one.

    >>> import convscope as cs
    >>> Flatten(0, 1)(cs.zeros(2, 3, 4)).shape
    (6, 4)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Any) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
