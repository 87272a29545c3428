"""Pointwise activations with their derivatives: the forward on NumPy arrays, the local
derivative computed only inside the backward rule (nothing extra under ``no_grad``).

>>> import convscope as cs
>>> x = cs.tensor([-4.0, 1.0, 7.0], requires_grad=True)
>>> relu6(x).sum().backward()
>>> x.grad.tolist()
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ops import elementwise
from ..tensor import Tensor
from .engine import attach

Derivative = Callable[[np.ndarray, np.ndarray], np.ndarray]


def pointwise(x: Tensor, out: np.ndarray, derivative: Derivative, name: str) -> Tensor:
    """``out = f(x)`` recorded with ``df/dx = derivative(x, out)`` (evaluated in backward)."""
    xa = x.data
    return attach(
        Tensor(out.astype(xa.dtype, copy=False)),
        (x,),
        lambda g, n: (g * derivative(xa, out),),
        name,
    )


def _sigmoid(a: np.ndarray) -> np.ndarray:
    """The logistic function without overflow (:func:`convscope.ops.elementwise.logistic`)."""
    return elementwise.logistic(a)


def hardtanh(x: Tensor, low: float, high: float, name: str = "Hardtanh") -> Tensor:
    xa = x.data
    out = np.clip(xa, low, high).astype(xa.dtype, copy=False)
    rule = lambda g, n: (elementwise.pass_inside(g, xa, low, high),)  # noqa: E731
    return attach(Tensor(out), (x,), rule, name)


def relu6(x: Tensor) -> Tensor:
    return hardtanh(x, 0, 6, "Hardtanh")


def hardsigmoid(x: Tensor) -> Tensor:
    a = x.data
    out = np.clip(a + 3, 0, 6) / 6
    return pointwise(x, out, lambda a, o: ((a > -3) & (a < 3)) / a.dtype.type(6), "Hardsigmoid")


def hardswish(x: Tensor) -> Tensor:
    a = x.data
    out = a * np.clip(a + 3, 0, 6) / 6

    def derivative(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        return np.where(a <= -3, 0, np.where(a < 3, a / 3 + 0.5, 1)).astype(a.dtype)

    return pointwise(x, out, derivative, "Hardswish")


def silu(x: Tensor) -> Tensor:
    a = x.data
    out = elementwise.logistic(a, silu=True)

    def derivative(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        s = _sigmoid(a)
        return s * (1 + a * (1 - s))

    return pointwise(x, out, derivative, "Silu")


def _softplus(a: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    scaled = a * beta
    with np.errstate(over="ignore"):
        soft = np.logaddexp(0, scaled) / beta
    return np.where(scaled > threshold, a, soft)


def mish(x: Tensor) -> Tensor:
    a = x.data
    t = np.tanh(_softplus(a, 1.0, 20.0))
    out = a * t

    def derivative(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        return t + a * _sigmoid(a) * (1 - t * t)

    return pointwise(x, out, derivative, "Mish")


def elu(x: Tensor, alpha: float) -> Tensor:
    a = x.data
    out = np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))

    def derivative(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        return np.where(a > 0, 1, alpha * np.exp(np.minimum(a, 0))).astype(a.dtype)

    return pointwise(x, out, derivative, "Elu")


def softplus(x: Tensor, beta: float, threshold: float) -> Tensor:
    a = x.data
    out = _softplus(a, beta, threshold)

    def derivative(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        return np.where(a * beta > threshold, 1, _sigmoid(a * beta)).astype(a.dtype)

    return pointwise(x, out, derivative, "Softplus")


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` where positive, ``weight * x`` elsewhere; one weight, or one per channel (dim 1)."""
    a, w = x.data, weight.data
    shape = (1, w.size) + (1,) * (a.ndim - 2) if w.size > 1 else ()
    slope = w.reshape(shape) if shape else w.reshape(())
    positive = a > 0
    out = np.where(positive, a, slope * a).astype(a.dtype)

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        gx = np.where(positive, g, slope * g) if needs[0] else None
        gw = None
        if needs[1]:
            masked = np.where(positive, 0, g * a)
            axes = tuple(i for i in range(a.ndim) if not (w.size > 1 and i == 1))
            gw = masked.sum(axis=axes).reshape(w.shape)
        return gx, gw

    return attach(Tensor(out), (x, weight), rule, "Prelu")
