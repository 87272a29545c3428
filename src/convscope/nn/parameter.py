"""``Parameter``: a tensor that a ``Module`` registers as learnable.

>>> import convscope as cs
>>> p = cs.nn.Parameter(cs.zeros(2))
>>> p.requires_grad
True
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor (``requires_grad=True`` by default)."""

    def __init__(self, data: Any = None, requires_grad: bool = True):
        super().__init__(() if data is None else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
