"""``Adam`` and ``AdamW``, following ``torch.optim.Adam`` and ``torch.optim.AdamW``.

``AdamW`` is ``Adam`` with decoupled weight decay, exactly as in PyTorch (where it is a subclass
passing ``decoupled_weight_decay=True``).

>>> import convscope as cs
>>> w = cs.nn.Parameter(cs.tensor([1.0, -1.0]))
>>> opt = cs.optim.Adam([w], lr=0.1)
>>> w.grad = cs.tensor([2.0, -0.5])
>>> opt.step()
>>> [round(x, 4) for x in w.tolist()]  # the first Adam step is lr * sign(grad)
[0.9, -0.9]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, _scalar_dtype


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start.lerp_(end, weight)``: ATen's two formulas, the weight in ``start``'s dtype."""
    weight = start.dtype.type(weight)
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        np.subtract(end, (1 - weight) * (end - start), out=start)


class Adam(Optimizer):
    """Adam (Kingma & Ba), optionally AMSGrad, with PyTorch's update rule.

    Per parameter, with ``t`` its step count and ``g`` its gradient (negated under
    ``maximize``; plus ``weight_decay * p`` unless the decay is decoupled, in which case
    ``p *= 1 - lr * weight_decay`` first)::

        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p -= lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    The state (``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` with amsgrad) is
    created at a parameter's first step, ``step`` as a float32 scalar Tensor as in PyTorch.

    >>> import convscope as cs
    >>> w = cs.nn.Parameter(cs.zeros(3))
    >>> opt = cs.optim.Adam([w], amsgrad=True)
    >>> w.grad = cs.ones(3)
    >>> opt.step()
    >>> sorted(opt.state[w]), opt.state[w]["step"]
    (['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step'], tensor(1.))
    >>> cs.optim.Adam([w], betas=(0.9, 1.0))
    Traceback (most recent call last):
    ...
    ValueError: Invalid beta parameter at index 1: 1.0
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not all(isinstance(beta, float) for beta in betas):
            raise ValueError("betas must be either both floats or both Tensors")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, group: dict[str, Any]) -> None:
        state, p = self.state[param], param.data
        if len(state) == 0:
            state["step"] = Tensor(np.zeros((), _scalar_dtype()))
            state["exp_avg"] = Tensor(np.zeros_like(p))
            state["exp_avg_sq"] = Tensor(np.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(np.zeros_like(p))
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        state["step"].data += 1
        step = float(state["step"])
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * p
        exp_avg, exp_avg_sq = state["exp_avg"].data, state["exp_avg_sq"].data
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            max_exp_avg_sq = state["max_exp_avg_sq"].data
            exp_avg_sq = np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        step_size = lr / (1 - beta1**step)
        denom = np.sqrt(exp_avg_sq) / (1 - beta2**step) ** 0.5
        denom += group["eps"]
        p += -step_size * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step instead of adding ``weight_decay * p`` to the gradient.

    >>> import convscope as cs
    >>> w = cs.nn.Parameter(cs.tensor([2.0]))
    >>> opt = cs.optim.AdamW([w], lr=0.5, weight_decay=0.5)
    >>> w.grad = cs.tensor([1.0])
    >>> opt.step()
    >>> round(w.item(), 4)  # 2 * (1 - 0.25) - 0.5
    1.0
    >>> opt.defaults["weight_decay"], opt.defaults["decoupled_weight_decay"]
    (0.5, True)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


__all__ = ["Adam", "AdamW"]
