"""The autograd engine: a dynamic graph of nodes, walked once in reverse topological order.

Every differentiable operation returns its result through :func:`attach`, giving the parents
and a *rule*: a function from the gradient of the result to the gradients of the parents
(``None`` for parents that need none).  ``backward`` accumulates with ``+=`` into ``.grad``
of leaves, as in PyTorch.

>>> import convscope as cs
>>> x = cs.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad.tolist()
[2.0, 4.0, 6.0]
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..tensor import Tensor

Rule = Callable[[np.ndarray, tuple[bool, ...]], Sequence[np.ndarray | None]]


class _GradState(threading.local):
    """Whether operations record a graph, per thread as in PyTorch (a server answering
    requests in threads under ``no_grad`` must not switch recording off for the others), and
    the values each entered context will restore."""

    enabled = True

    def __init__(self) -> None:
        self.saved: list[bool] = []


_state = _GradState()


def is_grad_enabled() -> bool:
    return _state.enabled


class _GradMode(contextlib.ContextDecorator):
    """Enter: remember this thread's mode and set ``self.mode``; exit: restore it.  The saved
    modes live on a per-thread stack, so one instance may be entered by several threads or
    re-entered (``@no_grad()`` on a recursive function)."""

    mode = False

    def __enter__(self) -> None:
        _state.saved.append(_state.enabled)
        _state.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _state.enabled = _state.saved.pop()


class set_grad_enabled(_GradMode):
    """Switch gradient recording on or off (a context manager, a decorator, or a plain call:
    ``set_grad_enabled(False)`` switches this thread's recording off at once)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = _state.enabled
        _state.enabled = self.mode

    def __enter__(self) -> None:
        _state.saved.append(self.previous)
        _state.enabled = self.mode


class no_grad(_GradMode):
    """Operations inside do not record a graph (evaluation, optimizer updates).

    >>> import convscope as cs
    >>> w = cs.ones(2, requires_grad=True)
    >>> with cs.no_grad():
    ...     (w * 2).requires_grad
    False
    """

    mode = False


class enable_grad(_GradMode):
    mode = True


class Node:
    """How a non-leaf tensor was made: its parents and the rule giving their gradients."""

    __slots__ = ("name", "parents", "rule")

    def __init__(self, name: str, parents: tuple[Tensor | None, ...], rule: Rule) -> None:
        self.name, self.parents, self.rule = name, parents, rule

    def __repr__(self) -> str:
        # PyTorch's class names: ``SumBackward0``; an op naming an overload gives it in full
        return f"<{self.name}>" if "Backward" in self.name else f"<{self.name}Backward0>"


_tensor_class: Any = None


def _tensor() -> type:
    """``convscope.tensor.Tensor``, imported once (the module imports this one): every op
    records through :func:`attach`, where an import statement per call cost about 1 us."""
    global _tensor_class
    if _tensor_class is None:
        from ..tensor import Tensor

        _tensor_class = Tensor
    return _tensor_class


def attach(result: Tensor, parents: Sequence[Any], rule: Rule, name: str) -> Tensor:
    """Record ``result = op(*parents)`` in the graph when any parent requires a gradient."""
    tensor = _tensor_class or _tensor()
    tensors = tuple(p if isinstance(p, tensor) else None for p in parents)
    if _state.enabled and any(t is not None and t.requires_grad for t in tensors):
        result.requires_grad = True
        result.grad_fn = Node(name, tensors, rule)
    return result


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched to reach it."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _topological(root: Tensor) -> list[Tensor]:
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        if tensor.grad_fn is not None:
            for parent in tensor.grad_fn.parents:
                if parent is not None and parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))
    return order


def _accumulate(tensor: Tensor, grad: np.ndarray) -> None:
    from ..tensor import Tensor

    if tensor.grad is None:
        tensor.grad = Tensor(np.array(grad, dtype=tensor.dtype, copy=True))
    else:
        tensor.grad.data += grad


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires it."""
    from ..tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs (got shape {root.shape})"
            )
        seed = np.ones(root.shape, dtype=root.dtype)
    else:
        seed = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient)
        if seed.shape != root.shape:
            raise RuntimeError(
                f"Mismatch in shape: grad_output[0] has a shape of {seed.shape} and output[0] "
                f"has a shape of {root.shape}."
            )
        seed = seed.astype(root.dtype, copy=False)
    grads: dict[int, np.ndarray] = {id(root): seed}
    for tensor in reversed(_topological(root)):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        node = tensor.grad_fn
        if node is None or tensor._retains_grad:
            _accumulate(tensor, grad)
        if node is None:
            continue
        if node.rule is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward(). Specify retain_graph=True if you "
                "need to backward through the graph a second time."
            )
        needs = tuple(p is not None and p.requires_grad for p in node.parents)
        parent_grads = node.rule(grad, needs)
        if not retain_graph:
            node.rule = None
        for parent, pgrad, need in zip(node.parents, parent_grads, needs, strict=True):
            if not need or pgrad is None:
                continue
            pgrad = unbroadcast(np.asarray(pgrad), parent.shape).astype(parent.dtype, copy=False)
            previous = grads.get(id(parent))
            grads[id(parent)] = pgrad if previous is None else previous + pgrad


__all__ = [
    "Node",
    "attach",
    "backward",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
    "unbroadcast",
]
