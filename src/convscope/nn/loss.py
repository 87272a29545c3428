"""Loss layers: ``CrossEntropyLoss``, ``NLLLoss``, ``MSELoss``, ``BCEWithLogitsLoss``.

Class weights (and ``pos_weight``) are buffers, as in PyTorch, so they appear in
``state_dict()`` and follow ``.to(dtype)``.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)
>>> loss
CrossEntropyLoss()
>>> round(loss(cs.zeros(2, 4), cs.tensor([0, 3])).item(), 4)
1.3863
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .functional.loss import _reduction
from .module import Module


def _buffer(value: Any) -> Tensor | None:
    return value if value is None or isinstance(value, Tensor) else Tensor(value)


class _Loss(Module):
    """``reduction`` ('mean', 'sum' or 'none'), or PyTorch's deprecated ``size_average`` and
    ``reduce`` flags."""

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _reduction(size_average, reduce, reduction, stacklevel=4)
        self.reduction = reduction


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities against class indices.

    >>> import convscope as cs
    >>> NLLLoss(ignore_index=0)(cs.tensor([[-1.0, -2.0], [-3.0, -4.0]]), cs.tensor([1, 0])).item()
    2.0
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


class CrossEntropyLoss(_Loss):
    """Cross entropy of logits against class indices (or class probabilities).

    >>> import convscope as cs
    >>> loss = CrossEntropyLoss(weight=cs.tensor([1.0, 3.0]), reduction="sum")
    >>> round(loss(cs.zeros(2, 2), cs.tensor([0, 1])).item(), 4)
    2.7726
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class MSELoss(_Loss):
    """Mean (or sum) of squared differences.

    >>> import convscope as cs
    >>> MSELoss(reduction="sum")(cs.tensor([1.0, 2.0]), cs.tensor([0.0, 0.0])).item()
    5.0
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits, with element ``weight`` and per-class ``pos_weight``.

    >>> import convscope as cs
    >>> loss = BCEWithLogitsLoss(pos_weight=cs.tensor([2.0]))
    >>> round(loss(cs.tensor([0.0]), cs.tensor([1.0])).item(), 4)
    1.3863
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
