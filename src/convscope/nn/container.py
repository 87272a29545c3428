"""Containers: ``Sequential`` (a chain of layers) and ``ModuleList`` (an indexable list).

Both keep their layers as sub-modules named ``'0'``, ``'1'``, ... (any names for a
``Sequential`` built from an ``OrderedDict``), so parameters and ``state_dict`` keys read
``'0.weight'`` exactly as in PyTorch.

>>> import convscope.nn as nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias']
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from ..autograd.engine import is_grad_enabled
from .module import Module, _add_indent, _lazy_import


def _checked(module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{type(module).__name__} is not a Module subclass")
    return module


class _Indexed(Module):
    """Integer indexing, ``len``, iteration, deletion (renumbering) and ``append``."""

    def _key(self, idx: int) -> str:
        size = len(self)
        idx = operator.index(idx)
        if not -size <= idx < size:
            raise IndexError(f"index {idx} is out of range")
        return list(self._modules)[idx % size]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __setitem__(self, idx: int, module: Module) -> None:
        self._modules[self._key(idx)] = _checked(module)  # same place, as in PyTorch

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(idx)]
        for key in keys:
            del self._modules[key]
        renumbered = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))
        object.__setattr__(self, "_modules", renumbered)

    def append(self, module: Module) -> _Indexed:
        """Add ``module`` at the end; returns ``self``."""
        self.add_module(str(len(self)), _checked(module))
        return self

    def extend(self, modules: Iterable[Module]) -> _Indexed:
        """Append every module of ``modules``; returns ``self``."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> _Indexed:
        """Insert ``module`` before position ``index`` (renumbering the ones after it)."""
        modules = list(self._modules.values())
        modules.insert(index, _checked(module))
        object.__setattr__(
            self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(modules))
        )
        return self


class Sequential(_Indexed):
    """Layers applied one after the other; built from modules or an ``OrderedDict``.

    >>> from collections import OrderedDict
    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> net = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU()))
    >>> net
    Sequential(
      (conv): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
      (act): ReLU()
    )
    >>> net(cs.rand(1, 1, 5, 5)).shape, len(net), net[-1]
    ((1, 2, 3, 3), 2, ReLU())
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, _checked(module))
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), _checked(module))

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    independent_samples = True

    def forward(self, input: Any) -> Any:
        fusion = _lazy_import("fusion")  # it imports this module
        modules = list(self._modules.values())
        if not is_grad_enabled():  # inference: fuse Conv-BatchNorm-activation runs
            return fusion.run_sequence(modules, input)
        return fusion.run_recorded(modules, input)  # training: BatchNorm-ReLU pairs fused


class ModuleList(_Indexed):
    """A list of modules whose parameters the parent module sees; no ``forward`` of its own.

    Its repr groups repeated layers as PyTorch does.

    >>> import convscope.nn as nn
    >>> nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()])
    ModuleList(
      (0-1): 2 x ReLU()
      (2): Tanh()
    )
    """

    independent_samples = True  # no forward: its parent's forward decides

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[self._key(idx)]

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)  # type: ignore[return-value]

    def __repr__(self) -> str:
        reprs = [repr(module) for module in self]
        if not reprs:
            return "ModuleList()"
        runs: list[list[Any]] = []  # [first index, last index, repr]
        for i, text in enumerate(reprs):
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [
            _add_indent(f"({a}): {text}" if a == b else f"({a}-{b}): {b - a + 1} x {text}", 2)
            for a, b, text in runs
        ]
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"
