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

    @property
    def independent_samples(self) -> bool:  # type: ignore[override]
        """The batch dimension stays apart unless flattening starts at it (or counts back)."""
        return self.start_dim >= 1

    def forward(self, input: Any) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (the inverse of ``Flatten``).

    >>> import convscope as cs
    >>> Unflatten(1, (2, 5))(cs.zeros(3, 10)).shape
    (3, 2, 5)
    >>> Unflatten(1, (2, 5))
    Unflatten(dim=1, unflattened_size=(2, 5))
    """

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        if not isinstance(unflattened_size, tuple | list):
            raise TypeError("unflattened_size must be tuple or list")
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    @property
    def independent_samples(self) -> bool:  # type: ignore[override]
        """The batch dimension stays apart unless it is the one split."""
        return self.dim >= 1

    def forward(self, input: Any) -> Tensor:
        x = input if isinstance(input, Tensor) else Tensor(input)
        dim = self.dim % x.ndim
        sizes = list(self.unflattened_size)
        if sizes.count(-1) == 1:
            known = 1
            for s in sizes:
                known *= s if s != -1 else 1
            sizes[sizes.index(-1)] = x.shape[dim] // known if known else 0
        total = 1
        for s in sizes:
            total *= s
        if total != x.shape[dim]:
            raise RuntimeError(
                f"unflatten: Provided sizes {list(self.unflattened_size)} don't multiply up to "
                f"the size of dim {self.dim} ({x.shape[dim]}) in the input tensor"
            )
        return x.reshape((*x.shape[:dim], *sizes, *x.shape[dim + 1 :]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
