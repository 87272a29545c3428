"""``Module``: the base class of layers, holding parameters, buffers and sub-modules.

>>> import convscope.nn as nn
>>> conv = nn.Conv1d(2, 3, 5)
>>> [name for name, _ in conv.named_parameters()]
['weight', 'bias']
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..ops import threads as _threads
from ..tensor import Tensor
from .parameter import Parameter

_hook_ids = itertools.count()


_lazy_modules: dict[str, Any] = {}


def _lazy_import(name: str) -> Any:
    """The module ``convscope.nn.<name>``, imported on first use: it imports this module (or
    one that does); an import statement in a hot function costs about 0.7 us a call."""
    module = _lazy_modules.get(name)
    if module is None:
        module = _lazy_modules[name] = importlib.import_module(f"{__package__}.{name}")
    return module


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` unregisters the hook (also on ``with`` exit).

    >>> import convscope.nn as nn
    >>> relu = nn.ReLU()
    >>> with relu.register_forward_hook(lambda m, i, o: None):
    ...     len(relu._forward_hooks)
    1
    >>> len(relu._forward_hooks)
    0
    """

    def __init__(self, *stores: dict) -> None:
        self.id = next(_hook_ids)
        self._stores = stores

    def remove(self) -> None:
        for store in self._stores:
            store.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _add_hook(store: OrderedDict, hook: Callable, prepend: bool, *extra: dict) -> RemovableHandle:
    handle = RemovableHandle(store, *extra)
    store[handle.id] = hook
    if prepend:
        store.move_to_end(handle.id, last=False)
    return handle


def _add_indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class for all layers; subclasses define ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_hooks_with_kwargs", set())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            if name not in params:  # replacing keeps the registration order
                self._remove(name)
            params[name] = value
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            if name not in self._modules:
                self._remove(name)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(convscope.nn.Parameter or None expected)"
                )
            params[name] = None
        elif params is not None and name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove(self, name: str) -> None:
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            store.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(store)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        self._remove(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}'")
        self._remove(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        self._remove(name)
        self._buffers[name] = tensor

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str) or "." in name or name == "":
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        self._remove(name)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, by dotted name (a module shared by
        several parents is listed once unless ``remove_duplicate=False``)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                child_prefix = f"{prefix}.{name}" if prefix else name
                yield from child.named_modules(memo, child_prefix, remove_duplicate)

    def get_submodule(self, target: str) -> Module:
        """The sub-module at dotted path ``target`` (``''`` is this module).

        >>> import convscope.nn as nn
        >>> nn.Sequential(nn.Sequential(nn.ReLU())).get_submodule("0.0")
        ReLU()
        """
        module: Module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}`")
            module = child
        return module

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named(
        self, store: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Tensor]]:
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        seen: set[int] = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Parameters by dotted name (a shared parameter once, under its first name)."""
        yield from self._named("_parameters", prefix, recurse, remove_duplicate)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        yield from self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``'layer1.0.conv1.weight'``)."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        param = module._parameters.get(name)
        if param is None:
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return param

    # ------------------------------------------------------------------ modes and dtypes
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every sub-module (children first), then on this module.

        >>> import convscope.nn as nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> names = []
        >>> _ = net.apply(lambda m: names.append(type(m).__name__))
        >>> names
        ['Linear', 'ReLU', 'Sequential']
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradient recording of every parameter on or off (freezing layers)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Convert floating-point parameters, their gradients and buffers to a dtype, in place.

        Accepts ``to(dtype)``, ``to(tensor)`` (its dtype), ``to('cpu')`` / ``to(device='cpu')``
        (convscope computes on the CPU only) and ``to('cpu', dtype)``.

        >>> import convscope as cs
        >>> conv = cs.nn.Conv2d(1, 1, 3).to(cs.float64)
        >>> conv.weight.dtype, conv.to("cpu") is conv
        (dtype('float64'), True)
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda", "mps", "meta"):
                device = arg
            else:
                dtype = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"convscope computes on the CPU only, cannot move to {device!r}")
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(
                f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}"
            )
        for tensor in [*self.parameters(), *self.buffers()]:
            if tensor.data.dtype.kind == "f":
                tensor.data = tensor.data.astype(dtype)
                if tensor.grad is not None:
                    tensor.grad.data = tensor.grad.data.astype(dtype)
        return self

    def cpu(self) -> Module:
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def half(self) -> Module:
        return self.to(np.float16)

    # ------------------------------------------------------------------ state
    def state_dict(
        self, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict[str, Tensor]:
        """Parameters and buffers by dotted name (tensors sharing the module's memory), in
        PyTorch's order: each module's own parameters, then its buffers, then its children."""
        state: Any = OrderedDict() if destination is None else destination
        for store in (self._parameters, self._buffers):
            for name, tensor in store.items():
                if tensor is not None:
                    state[prefix + name] = tensor if keep_vars else Tensor(tensor.data)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(state, f"{prefix}{name}.", keep_vars)
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copy values (tensors, NumPy arrays, or anything ``np.asarray`` takes) into the module.

        All checks run before anything is copied: on error the module is unchanged.  With
        ``assign=True`` (as in PyTorch) each parameter and buffer takes the state's array
        itself, with its dtype, instead of a copy (a read-only or non-contiguous one is copied
        first): loading then holds no second copy of the weights.  The ``Parameter`` objects
        stay the same.

        >>> import convscope as cs
        >>> layer = cs.nn.Linear(2, 1)
        >>> weight = np.array([[1.0, 2.0]], np.float32)
        >>> _ = layer.load_state_dict({"weight": weight, "bias": np.zeros(1, np.float32)},
        ...                           assign=True)
        >>> layer.weight.data is weight
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, values = [], {}
        for key, tensor in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            try:
                array = value.data if isinstance(value, Tensor) else np.asarray(value)
            except (TypeError, ValueError) as error:
                errors.append(f"cannot read {key} as an array: {error}")
                continue
            if array.dtype.kind not in "biuf":
                errors.append(
                    f'While copying the parameter named "{key}", expected a numeric array '
                    f"from checkpoint but got dtype {array.dtype}."
                )
            elif array.shape != tensor.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {array.shape} from "
                    f"checkpoint, the shape in current model is {tensor.shape}."
                )
            values[key] = array
        if strict:
            if unexpected:
                errors.insert(
                    0,
                    "Unexpected key(s) in state_dict: "
                    + ", ".join(f'"{k}"' for k in unexpected)
                    + ". ",
                )
            if missing:
                errors.insert(
                    0,
                    "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ",
                )
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(errors)
            )
        for key, array in values.items():
            if assign:
                own[key].data = np.require(array, requirements=["C", "W"])
            else:
                own[key].data[...] = array
        return IncompatibleKeys(missing, unexpected)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad.data[...] = 0

    # ------------------------------------------------------------------ hooks
    def register_forward_pre_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args)`` before ``forward``; a non-``None`` result replaces the
        arguments (a tuple, or a single value). With ``with_kwargs=True`` the hook gets and may
        return ``(args, kwargs)``."""
        handle = _add_hook(self._forward_pre_hooks, hook, prepend)
        if with_kwargs:
            self._hooks_with_kwargs.add(("pre", handle.id))
        return handle

    def register_forward_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after ``forward``; a non-``None`` result replaces
        the output. This is how feature maps are pulled out of a network.

        >>> import convscope as cs
        >>> import convscope.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        >>> maps = {}
        >>> handle = net[0].register_forward_hook(lambda m, i, o: maps.update(conv=o))
        >>> _ = net(cs.rand(1, 1, 8, 8))
        >>> maps["conv"].shape
        (1, 4, 6, 6)
        >>> handle.remove()
        """
        handle = _add_hook(self._forward_hooks, hook, prepend)
        if with_kwargs:
            self._hooks_with_kwargs.add(("post", handle.id))
        if always_call:
            self._hooks_with_kwargs.add(("always", handle.id))
        return handle

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        flags = self._hooks_with_kwargs
        for key, hook in list(self._forward_pre_hooks.items()):
            if ("pre", key) in flags:
                result = hook(self, args, kwargs)
                if result is not None:
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        try:
            output = self.forward(*args, **kwargs)
        except Exception:
            for key, hook in list(self._forward_hooks.items()):
                if ("always", key) in flags:
                    # the forward's own error is the one to report
                    with contextlib.suppress(Exception):
                        self._run_forward_hook(key, hook, args, kwargs, None)
            raise
        for key, hook in list(self._forward_hooks.items()):
            result = self._run_forward_hook(key, hook, args, kwargs, output)
            if result is not None:
                output = result
        return output

    def _run_forward_hook(
        self, key: int, hook: Callable[..., Any], args: tuple, kwargs: dict, output: Any
    ) -> Any:
        if ("post", key) in self._hooks_with_kwargs:
            return hook(self, args, kwargs, output)
        return hook(self, args, output)

    # ------------------------------------------------------------------ calling and display
    #: True when ``forward`` computes each sample (index along dimension 0) from that sample
    #: alone; eval-mode inference may then run shares of a batch on separate threads
    #: (:mod:`convscope.nn.batch_parallel`).  Read only from the class that defines
    #: ``forward`` or a subclass of it: a subclass with its own ``forward`` must set it again.
    independent_samples: bool = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._modules and args and not _threads.sharing():
            output = _lazy_import("batch_parallel").maybe_split(self, args, kwargs)
            if output is not NotImplemented:
                return output
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"
