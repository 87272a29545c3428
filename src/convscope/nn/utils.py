"""Module utilities with PyTorch's names.

>>> import convscope as cs
>>> layer = skip_init(cs.nn.Conv2d, 3, 8, 3)
>>> layer.weight.shape
(8, 3, 3, 3)
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import init
from .module import Module

M = TypeVar("M", bound=Module)


def skip_init(module_cls: type[M], *args: Any, **kwargs: Any) -> M:
    """``module_cls(*args, **kwargs)`` without initialising its parameters and buffers: their
    values are whatever memory held (as after PyTorch's ``skip_init``), to be overwritten,
    typically by ``load_state_dict(state, assign=True)``.  No random numbers are drawn (the
    generator is not advanced) and no temporaries are made, so building a big model before
    loading its weights costs neither time nor memory.
    """
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise TypeError(f"skip_init expects a Module subclass, got {module_cls!r}")
    with init.skipped():
        return module_cls(*args, **kwargs)
