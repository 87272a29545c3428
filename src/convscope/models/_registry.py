"""The table of model builders by name: ``register_model``, ``get_model``, ``list_models``
(torchvision's ``models._api`` functions of the same names).

>>> from convscope import models
>>> "resnet18" in list_models() and get_model_builder("ResNet18") is models.resnet18
True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

_MODELS: dict[str, Callable[..., Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator adding a builder to the table under ``name`` (default: its own name)."""

    def wrapper(fn: F) -> F:
        key = fn.__name__ if name is None else name
        if key in _MODELS:
            raise ValueError(f"An entry is already registered under the name '{key}'.")
        _MODELS[key] = fn
        return fn

    return wrapper


def _filters(patterns: Iterable[str] | str | None) -> list[str]:
    if not patterns:
        return []
    return [patterns] if isinstance(patterns, str) else list(patterns)


def list_models(
    module: ModuleType | None = None,
    include: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
) -> list[str]:
    """Sorted names of the registered models, optionally only those defined in ``module``'s
    package (``convscope.models.video``), filtered by ``fnmatch`` patterns.

    >>> list_models(include="resnet1*")
    ['resnet101', 'resnet152', 'resnet18']
    """
    names = {
        key
        for key, fn in _MODELS.items()
        if module is None or fn.__module__.rsplit(".", 1)[0] == module.__name__
    }
    wanted = _filters(include)
    if wanted:
        names = {n for n in names if any(fnmatch.fnmatch(n, p) for p in wanted)}
    for pattern in _filters(exclude):
        names = {n for n in names if not fnmatch.fnmatch(n, pattern)}
    return sorted(names)


def get_model_builder(name: str) -> Callable[..., Any]:
    """The builder function registered as ``name`` (case-insensitive)."""
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown model {name}") from None


def get_model(name: str, **config: Any) -> Any:
    """Build the model registered as ``name`` with ``config`` passed to its builder.

    >>> get_model("mobilenet_v2", num_classes=5).classifier[1].out_features
    5
    """
    return get_model_builder(name)(**config)
