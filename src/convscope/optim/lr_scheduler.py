"""Learning-rate schedulers, following ``torch.optim.lr_scheduler``.

A scheduler sets ``group["lr"]`` of its optimizer's groups each time ``step()`` is called (once
at construction, then once per epoch, after ``optimizer.step()``).  ``StepLR`` and
``CosineAnnealingLR`` use PyTorch's recursive ("chainable") formulas, so their values match
PyTorch's step by step and compose with other changes to the learning rate.

>>> import convscope as cs
>>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=1.0)
>>> sched = cs.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     opt.step()
...     lrs.append(sched.get_last_lr()[0])
...     sched.step()
>>> lrs
[1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where "
    "possible. Please use `scheduler.step()` to step the scheduler. During the deprecation, if "
    "epoch is different from None, the closed form is used instead of the new chainable form, "
    "where available. Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


class LRScheduler:
    """Base class of the schedulers: subclasses implement :meth:`get_lr` (and a closed form).

    ``last_epoch=-1`` starts a schedule (recording each group's ``"initial_lr"``); a larger
    value resumes one, and then every group must already have ``"initial_lr"``.

    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.1)
    >>> cs.optim.lr_scheduler.StepLR(opt, step_size=3, last_epoch=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    KeyError: "param 'initial_lr' is not specified in param_groups[0] when resuming scheduler..."
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                        "scheduler with last_epoch >= 0.\n"
                        "This typically happens when:\n"
                        "1. You're trying to resume training from a checkpoint but haven't "
                        "properly loaded the optimizer state\n"
                        "2. You're using last_epoch >= 0 for a fresh training run (not "
                        "recommended)"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (as PyTorch's).

        >>> import convscope as cs
        >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.1)
        >>> sd = cs.optim.lr_scheduler.StepLR(opt, step_size=3).state_dict()
        >>> sd["step_size"], sd["base_lrs"], sd["last_epoch"], sd["_last_lr"]
        (3, [0.1], 0, [0.1])
        """
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by :meth:`state_dict`.

        >>> import convscope as cs
        >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.1)
        >>> sched = cs.optim.lr_scheduler.StepLR(opt, step_size=3)
        >>> sched.load_state_dict({"last_epoch": 7, "step_size": 2})
        >>> sched.last_epoch, sched.step_size
        (7, 2)
        """
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the latest :meth:`step`, one per parameter group.

        >>> import convscope as cs
        >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.1)
        >>> cs.optim.lr_scheduler.StepLR(opt, step_size=3).get_last_lr()
        [0.1]
        """
        return self._last_lr

    def get_lr(self) -> list[float]:
        """The next learning rates (called by :meth:`step`; use :meth:`get_last_lr` to read)."""
        raise NotImplementedError

    def _get_closed_form_lr(self) -> list[float]:
        """The learning rates at ``last_epoch`` from ``base_lrs`` (used by ``step(epoch)``)."""
        return self.get_lr()

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _warn_if_called_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use "
                "`get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch and set the optimizer's learning rates (after ``optimizer.step()``).

        ``epoch`` (deprecated in PyTorch, and warned about) jumps to that epoch using the
        closed-form schedule.

        >>> import convscope as cs
        >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=1.0)
        >>> sched = cs.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        >>> opt.step()
        >>> sched.step()
        >>> opt.param_groups[0]["lr"], sched.last_epoch
        (0.5, 1)
        """
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In PyTorch "
                "1.1.0 and later, you should call them in the opposite order: "
                "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this will "
                "result in PyTorch skipping the first value of the learning rate schedule. See "
                "more details at "
                "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                values = self._get_closed_form_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr: list[float] = self._group_lrs()


class StepLR(LRScheduler):
    """Multiply each group's learning rate by ``gamma`` every ``step_size`` epochs.

    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=0.8)
    >>> sched = cs.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    >>> for _ in range(6):
    ...     opt.step()
    ...     sched.step()
    >>> sched.get_last_lr()
    [0.2]
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """``lr * gamma`` at each non-zero multiple of ``step_size``, else the current ``lr``."""
        self._warn_if_called_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs
        ]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from each group's initial learning rate down to ``eta_min`` over
    ``T_max`` epochs (and back up over the next ``T_max``, periodically).

    The values come from PyTorch's recursion, not the closed form, so they match its rounding::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T)) / (1 + cos(pi (t-1) / T))

    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter(cs.zeros(1))], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    >>> lrs = []
    >>> for _ in range(8):
    ...     opt.step()
    ...     sched.step()
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    >>> lrs
    [0.882843, 0.6, 0.317157, 0.2, 0.317157, 0.6, 0.882843, 1.0]
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The next step of the cosine recursion (PyTorch's three cases)."""
        self._warn_if_called_outside_step()
        eta_min, t_max, epoch = self.eta_min, self.T_max, self.last_epoch
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and epoch > 0:
            return self._get_closed_form_lr()
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return [
                lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                for base_lr, lr in zip(self.base_lrs, self._group_lrs(), strict=True)
            ]
        return [
            (1 + math.cos(math.pi * epoch / t_max))
            / (1 + math.cos(math.pi * (epoch - 1) / t_max))
            * (lr - eta_min)
            + eta_min
            for lr in self._group_lrs()
        ]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base_lr in self.base_lrs
        ]


__all__ = ["CosineAnnealingLR", "LRScheduler", "StepLR"]
