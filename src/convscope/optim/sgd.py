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

from ..ops import jit
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
        buf = self.state[param].get("momentum_buffer") if momentum != 0 else None
        if buf is not None and not grad.flags.c_contiguous and grad.size >= ONE_PASS_FROM:
            # one copy in memory order, then the compiled pass: a strided gradient read by
            # NumPy's several passes cost 10x (a transposed view of ResNet-18's weights)
            grad = np.ascontiguousarray(grad)
        if buf is not None and _one_pass(param.data, grad, buf.data):
            jit.call(
                "sgd_momentum",
                param.data.reshape(-1),
                grad.reshape(-1),
                buf.data.reshape(-1),
                float(group["lr"]),
                float(momentum),
                float(1 - group["dampening"]),
                float(weight_decay),
                bool(group["nesterov"]),
            )
            return
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


ONE_PASS_FROM = 1 << 12
"""Parameter size from which a step with momentum runs as one compiled pass (NumPy's
several passes and temporary arrays cost about 3x as much on big kernels; the call overhead
outweighs that below)."""


def _one_pass(param: np.ndarray, grad: np.ndarray, buf: np.ndarray) -> bool:
    """The compiled step applies: numba works, big C-contiguous float arrays of one dtype
    and shape that do not overlap."""
    return (
        param.size >= ONE_PASS_FROM
        and param.dtype in (np.float32, np.float64)
        and grad.dtype == buf.dtype == param.dtype
        and grad.shape == buf.shape == param.shape
        and param.flags.c_contiguous
        and param.flags.writeable
        and grad.flags.c_contiguous
        and buf.flags.c_contiguous
        and not np.may_share_memory(param, grad)
        and not np.may_share_memory(param, buf)
        and not np.may_share_memory(grad, buf)
        and jit.kernels() is not None
    )


__all__ = ["SGD"]
