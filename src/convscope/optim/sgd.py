"""``SGD``: stochastic gradient descent with momentum, following ``torch.optim.SGD``.

>>> import convscope as cs
>>> w = cs.nn.Parameter(cs.tensor([1.0]))
>>> opt = cs.optim.SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(2):
...     w.grad = cs.tensor([1.0])
...     opt.step()
>>> round(w.item(), 6)  # 1 - 0.1 * 1 - 0.1 * (0.9 * 1 + 1)
0.71
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, PyTorch's rule.

    With ``g`` the gradient (negated under ``maximize``) plus ``weight_decay * p``, the momentum
    buffer starts as a copy of ``g`` at a parameter's first step and then follows
    ``b = momentum * b + (1 - dampening) * g``; the step is ``p -= lr * d`` with ``d = b``, or
    ``d = g + momentum * b`` for Nesterov, or ``d = g`` without momentum.

    >>> import convscope as cs
    >>> w = cs.nn.Parameter(cs.tensor([2.0, -4.0]))
    >>> opt = cs.optim.SGD([w], lr=0.5, momentum=0.5, weight_decay=0.5, nesterov=True)
    >>> w.grad = cs.tensor([1.0, 1.0])
    >>> opt.step()
    >>> w.tolist()  # d = g + 0.5 * b, where g = b = grad + 0.5 * w = [2, -1]
    [0.5, -3.25]
    >>> cs.optim.SGD([w], nesterov=True)
    Traceback (most recent call last):
    ...
    ValueError: Nesterov momentum requires a momentum and zero dampening
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, group: dict[str, Any]) -> None:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * param.data
        if momentum != 0:
            state = self.state[param]
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = buf = Tensor(grad.copy())
            else:
                buf.data *= momentum
                damped = 1 - group["dampening"]
                # no scaled copy when it would multiply by 1 (the same values)
                buf.data += grad if damped == 1 else damped * grad
            grad = grad + momentum * buf.data if group["nesterov"] else buf.data
        param.data += -group["lr"] * grad


__all__ = ["SGD"]
