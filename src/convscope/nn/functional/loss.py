"""Losses: cross-entropy, negative log-likelihood, mean squared error, BCE with logits."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ...autograd import functions as _fn
from ...autograd import nn_ops as _nn_ops
from ...tensor import Tensor
from ._common import _check_broadcast, _tensor_arg, _type_name
from .conv import _array, _as_tensor

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(
    size_average: bool | None, reduce: bool | None, reduction: str, stacklevel: int = 3
) -> str:
    """The reduction, from the deprecated ``size_average``/``reduce`` pair when given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(
            "size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            UserWarning,
            stacklevel=stacklevel,
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _ratio(total: Tensor, denominator: Any) -> Tensor:
    """``total / denominator``; NaN (with zero gradient) when nothing was counted, as PyTorch."""
    if denominator == 0:
        return total * 0.0 + math.nan
    return total / denominator


def _class_weight(weight: Any, classes: int, op: str) -> np.ndarray | None:
    if weight is None:
        return None
    w = _array(weight, "weight", op)
    if w.shape != (classes,):
        raise RuntimeError(
            f"weight tensor should be defined either for all {classes} classes or no classes "
            f"but got weight tensor of shape: {list(w.shape)}"
        )
    return w


def _class_targets(x: Tensor, target: np.ndarray, ignore_index: int, op: str) -> np.ndarray:
    """Check class-index targets against ``x``; the mask of targets that count."""
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if x.ndim > 1 and target.ndim > 0 and target.shape[0] != x.shape[0]:
        raise ValueError(
            f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
            f"({target.shape[0]})."
        )
    expected = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if target.shape != expected:
        if x.ndim <= 2:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")
    if target.dtype.name not in ("int64", "uint8"):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_type_name(target.dtype)}"
        )
    counted = target != ignore_index
    bad = target[counted & ((target < 0) | (target >= x.shape[min(1, x.ndim - 1)]))]
    if bad.size:
        raise IndexError(f"Target {bad.flat[0]} is out of bounds.")
    return counted


def _nll(
    log_probs: Tensor, target: np.ndarray, weight: Any, ignore_index: int, reduction: str, op: str
) -> Tensor:
    class_dim = min(1, log_probs.ndim - 1)
    counted = _class_targets(log_probs, target, ignore_index, op)
    w = _class_weight(weight, log_probs.shape[class_dim] if log_probs.ndim else 0, op)
    safe = np.where(counted, target, 0).astype(np.int64)
    picked_weight = (counted if w is None else w[safe] * counted).astype(log_probs.dtype)
    grid = np.indices(safe.shape, sparse=True)
    loss = -(log_probs[(*grid[:class_dim], safe, *grid[class_dim:])] * picked_weight)
    if reduction != "mean":
        return _reduce(loss, reduction)
    return _ratio(loss.sum(), picked_weight.sum())


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class-index targets: ``-weight[t] * input[n, t, ...]``.

    ``input`` holds log-probabilities ``(N, C, d1, ...)`` or ``(C,)``; targets equal to
    ``ignore_index`` count nothing; ``'mean'`` divides by the sum of the counted weights.

    >>> import convscope as cs
    >>> nll_loss(cs.tensor([[-1.0, -2.0], [-3.0, -4.0]]), cs.tensor([1, 0])).item()
    2.5
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "input", "nll_loss")
    t = _array(target, "target", "nll_loss")
    return _nll(x, t, weight, ignore_index, reduction, "nll_loss")


def _soft_cross_entropy(
    x: Tensor, target: Any, weight: Any, ignore_index: int, reduction: str, smoothing: float
) -> Tensor:
    """Cross entropy against class probabilities (``target`` shaped like ``input``)."""
    t = _as_tensor(target)
    if t.dtype.kind != "f":
        raise RuntimeError(
            "Expected floating point type for target with class probabilities, got "
            f"{_type_name(t.dtype)}"
        )
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")
    class_dim = min(1, x.ndim - 1)
    classes = x.shape[class_dim]
    w = _class_weight(weight, classes, "cross_entropy")
    if smoothing > 0:
        t = t * (1 - smoothing) + smoothing / classes
    terms = _fn.log_softmax(x, class_dim) * t
    if w is not None:
        terms = terms * w.reshape((-1,) + (1,) * (x.ndim - class_dim - 1))
    loss = -terms.sum(class_dim)
    if reduction != "mean":
        return _reduce(loss, reduction)
    return _ratio(loss.sum(), x.numel() // max(classes, 1))


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits ``(N, C, d1, ...)`` or ``(C,)`` against class indices (or class
    probabilities shaped like ``input``), with PyTorch's weights, ``ignore_index`` and label
    smoothing (``(1 - s) * nll + s/C * sum of -log p``, normalised like the nll term).

    >>> import convscope as cs
    >>> round(cross_entropy(cs.tensor([[0.0, 0.0]]), cs.tensor([1])).item(), 4)
    0.6931
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "input", "cross_entropy")
    t = _array(target, "target", "cross_entropy")
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if t.shape == x.shape:
        return _soft_cross_entropy(x, target, weight, ignore_index, reduction, label_smoothing)
    class_dim = min(1, x.ndim - 1)
    log_probs = _fn.log_softmax(x, class_dim) if x.ndim else x
    nll = _nll(log_probs, t, weight, ignore_index, reduction, "cross_entropy")
    if label_smoothing <= 0.0:
        return nll
    classes = x.shape[class_dim]
    counted = t != ignore_index
    w = _class_weight(weight, classes, "cross_entropy")
    per_class = log_probs
    if w is not None:
        per_class = per_class * w.reshape((-1,) + (1,) * (x.ndim - class_dim - 1))
    smooth = _fn.where(counted, -per_class.sum(class_dim), 0.0)
    if reduction == "mean":
        counted_weight = counted.sum() if w is None else w[t[counted]].sum()
        smooth = _ratio(smooth.sum(), counted_weight)
    else:
        smooth = _reduce(smooth, reduction)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / classes)


def mse_loss(
    input: Any,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    """Squared error ``(input - target)**2``, optionally weighted element-wise.

    >>> import convscope as cs
    >>> mse_loss(cs.tensor([1.0, 2.0]), cs.tensor([2.0, 4.0])).item()
    2.5
    """
    x, t = _tensor_arg(input, "input", "mse_loss"), _tensor_arg(target, "target", "mse_loss")
    if t.shape != x.shape:
        warnings.warn(
            f"Using a target size ({list(t.shape)}) that is different to the input size "
            f"({list(x.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=2,
        )
    reduction = _reduction(size_average, reduce, reduction)
    _check_broadcast(x.shape, t.shape)
    diff = x - t
    loss = diff * diff
    if weight is None:
        return _reduce(loss, reduction)
    w = _tensor_arg(weight, "weight", "mse_loss")
    if w.shape != x.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = loss * w
    return loss.sum() / w.sum() if reduction == "mean" else _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross entropy of ``sigmoid(input)``, computed stably from the logits:
    ``(1 - t) * x - (1 + (pos_weight - 1) * t) * log_sigmoid(x)``, times ``weight``.

    >>> import convscope as cs
    >>> round(binary_cross_entropy_with_logits(cs.tensor([0.0]), cs.tensor([1.0])).item(), 4)
    0.6931
    """
    reduction = _reduction(size_average, reduce, reduction)
    op = "binary_cross_entropy_with_logits"
    x, t = _tensor_arg(input, "input", op), _tensor_arg(target, "target", op)
    if t.shape != x.shape:
        raise ValueError(
            f"Target size ({list(t.shape)}) must be the same as input size ({list(x.shape)})"
        )
    log_sigmoid = _nn_ops.log_sigmoid(x)
    if pos_weight is not None:
        pw = _tensor_arg(pos_weight, "pos_weight", op)
        _check_broadcast(pw.shape, t.shape)
        log_sigmoid = log_sigmoid * ((pw - 1) * t + 1)
    loss = (1 - t) * x - log_sigmoid
    if weight is not None:
        w = _tensor_arg(weight, "weight", op)
        _check_broadcast(loss.shape, w.shape)
        loss = loss * w
    return _reduce(loss, reduction)
