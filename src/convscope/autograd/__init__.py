"""Automatic differentiation: the graph engine and the differentiable operations."""

from .engine import backward, enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
