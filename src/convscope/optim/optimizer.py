"""``Optimizer``: the base class of every optimizer, following ``torch.optim.Optimizer``.

The base class owns everything the algorithms share: building ``param_groups`` (per-group
options default to the constructor's), ``zero_grad``, ``step`` (closure, the loop over the
parameters that have a gradient, ``maximize``), ``state_dict`` / ``load_state_dict`` with
PyTorch's layout, and ``repr``.  A subclass implements only :meth:`Optimizer._update`, the rule
for one parameter, working in place on NumPy arrays.

>>> import convscope as cs
>>> w = cs.nn.Parameter(cs.tensor([1.0, -2.0]))
>>> opt = cs.optim.SGD([w], lr=0.5)
>>> (w * w).sum().backward()
>>> opt.step()
>>> w.tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, TypeAlias

import numpy as np

from .._dtypes import float64, get_default_dtype
from ..autograd.engine import enable_grad
from ..tensor import Tensor

ParamsT: TypeAlias = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]
StateDict: TypeAlias = dict[str, Any]


def _typename(obj: Any) -> str:
    """``torch.typename`` for non-torch objects: ``int``, ``numpy.ndarray``..."""
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _scalar_dtype() -> np.dtype:
    """The dtype of a ``step`` counter: float64 when that is the default dtype, else float32."""
    return float64 if get_default_dtype() == float64 else np.dtype(np.float32)


def _is_array(value: Any) -> bool:
    """Tensors and arrays (including other libraries' tensors), but not NumPy scalars."""
    return isinstance(value, Tensor | np.ndarray) or (
        hasattr(value, "__array__") and not isinstance(value, np.generic)
    )


def _cast(param: Tensor, value: Any, key: Any = None) -> Any:
    """A copy of ``value`` for ``param``'s state: arrays become Tensors of ``param``'s float
    dtype (except ``step``), containers are copied element by element, as torch's loader does.
    """
    if _is_array(value):
        array = np.asarray(value)
        dtype = param.dtype if key != "step" and param.dtype.kind == "f" else array.dtype
        return Tensor(array.astype(dtype, copy=True))
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cast(param, v) for v in value)
    return copy.deepcopy(value)


class Optimizer:
    """Base class of the optimizers: parameter groups, state, ``step``, ``zero_grad``.

    ``params`` is an iterable of Parameters (or of ``(name, Parameter)`` pairs, as from
    ``named_parameters()``), or a list of dicts, each a group with a ``"params"`` entry and
    per-group options overriding ``defaults``.

    >>> import convscope as cs
    >>> a, b = cs.nn.Parameter(cs.zeros(2)), cs.nn.Parameter(cs.zeros(3))
    >>> opt = cs.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=0.01)
    >>> [g["lr"] for g in opt.param_groups]
    [0.01, 0.1]
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got " + _typename(params)
            )
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with optional per-group options) to ``param_groups``.

        The dict itself is stored, completed with the defaults, as PyTorch does.

        >>> import convscope as cs
        >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.1)
        >>> opt.add_param_group({"params": cs.nn.Parameter(cs.zeros(2)), "momentum": 0.9})
        >>> opt.param_groups[1]["lr"], opt.param_groups[1]["momentum"]
        (0.1, 0.9)
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        params = [params] if isinstance(params, Tensor) else list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        param_group["params"] = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are "
                    "missing"
                )
            param_group["param_names"] = names
        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + _typename(param)
                )
            if not (param.is_leaf or param._retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        ids = [id(p) for p in param_group["params"]]
        if len(ids) != len(set(ids)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, "
                "this will cause an error; see github.com/pytorch/pytorch/issues/40967 for more "
                "information",
                stacklevel=3,
            )
        for group in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {kind} to the optimizer"
                )
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: set them to ``None`` (default) or fill them with zeros.

        >>> import convscope as cs
        >>> w = cs.nn.Parameter(cs.ones(2))
        >>> opt = cs.optim.SGD([w])
        >>> w.sum().backward()
        >>> opt.zero_grad(set_to_none=False)
        >>> w.grad.tolist()
        [0.0, 0.0]
        >>> opt.zero_grad()
        >>> w.grad is None
        True
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.grad_fn, p.grad.requires_grad = None, False
                    p.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()`` if one is given.

        The closure (which should zero the gradients, compute the loss, call ``backward`` and
        return the loss) runs first, with gradient recording enabled.

        >>> import convscope as cs
        >>> w = cs.nn.Parameter(cs.tensor([3.0]))
        >>> opt = cs.optim.SGD([w], lr=0.25)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (w * w).sum()
        ...     loss.backward()
        ...     return loss
        >>> opt.step(closure).item(), w.item()
        (9.0, 1.5)
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True  # read by the learning-rate schedulers' order check
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    grad = param.grad.data
                    self._update(param, -grad if group.get("maximize") else grad, group)
        return loss

    def _update(self, param: Tensor, grad: np.ndarray, group: dict[str, Any]) -> None:
        """Apply the algorithm to one parameter in place on ``param.data``.

        ``grad`` is already negated under ``maximize`` and must not be modified in place (it
        may be the parameter's ``.grad`` array).
        """
        raise NotImplementedError

    def state_dict(self) -> StateDict:
        """The optimizer's state, laid out as PyTorch's.

        ``"state"`` maps each parameter's index (counted across the groups in order) to its
        state dict, and ``"param_groups"`` holds each group's options with ``"params"`` as a list
        of those indices.  Like PyTorch's, the state tensors are the live ones (not copies).

        >>> import convscope as cs
        >>> w = cs.nn.Parameter(cs.ones(2))
        >>> opt = cs.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> w.sum().backward()
        >>> opt.step()
        >>> sd = opt.state_dict()
        >>> sd["state"]
        {0: {'momentum_buffer': tensor([1., 1.])}}
        >>> sd["param_groups"][0]["params"]
        [0]
        """
        index: dict[int, int] = {}
        param_groups, start = [], 0
        for group in self.param_groups:
            for i, p in enumerate(group["params"], start):
                index.setdefault(id(p), i)
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            param_groups.append(packed)
            start += len(packed["params"])
        state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: StateDict) -> None:
        """Load a state saved by :meth:`state_dict` (this library's or PyTorch's).

        Parameters are matched by position. State arrays are copied into Tensors of their
        parameter's floating dtype (``step`` keeps its own), and the group options are replaced
        by the saved ones.

        >>> import convscope as cs
        >>> w = cs.nn.Parameter(cs.ones(2))
        >>> opt = cs.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> w.sum().backward()
        >>> opt.step()
        >>> fresh = cs.optim.SGD([w], lr=0.5)
        >>> fresh.load_state_dict(opt.state_dict())
        >>> fresh.param_groups[0]["lr"], fresh.state[w]["momentum_buffer"].tolist()
        (0.1, [1.0, 1.0])
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(
            len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups, strict=True)
        ):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
                strict=True,
            )
        )
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in id_map:
                state[id_map[key]] = _cast(id_map[key], value)
            else:
                state[key] = value
        for group, saved in zip(groups, saved_groups, strict=True):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state, self.param_groups = state, saved_groups


__all__ = ["Optimizer", "ParamsT", "StateDict"]
