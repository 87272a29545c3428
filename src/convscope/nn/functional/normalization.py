"""Batch normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...tensor import Tensor
from ._common import _tensor_arg
from .conv import _array, _as_tensor


def _update_running(buffer: Any, batch: np.ndarray, momentum: float) -> None:
    array = _array(buffer, "running stats", "batch_norm")
    array *= 1 - momentum
    array += momentum * batch.reshape(array.shape)


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dimension 1) to zero mean and unit variance, then scale and shift.

    Training uses the batch statistics (biased variance) and updates ``running_mean`` and
    ``running_var`` in place with ``momentum`` (the running variance takes the unbiased batch
    variance); evaluation uses the running statistics.

    >>> import convscope as cs
    >>> mean, var = cs.zeros(1), cs.ones(1)
    >>> y = batch_norm(cs.tensor([[1.0], [3.0]]), mean, var, training=True)
    >>> [round(v, 4) for v in y.flatten().tolist()]
    [-1.0, 1.0]
    >>> [round(v, 4) for v in mean.tolist() + var.tolist()]
    [0.2, 1.1]
    """
    x = _tensor_arg(input, "input", "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects an input of 2 or more dimensions, got {x.ndim}D")
    channels = x.shape[1]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        size = channels if value is None else _array(value, name, "batch_norm").size
        if size != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {size}")
    shape = (1, channels) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // max(channels, 1)
        if count <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"{list(x.shape)}"
            )
        axes = (0, *range(2, x.ndim))
        mean = x.mean(axes, keepdim=True)
        var = x.var(axes, unbiased=False, keepdim=True)
        if running_mean is not None:
            _update_running(running_mean, mean.data, momentum)
        if running_var is not None:
            _update_running(running_var, var.data * (count / (count - 1)), momentum)
    elif running_mean is None or running_var is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    else:
        mean = _as_tensor(running_mean).reshape(shape)
        var = _as_tensor(running_var).reshape(shape)
    y = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * _as_tensor(weight).reshape(shape)
    if bias is not None:
        y = y + _as_tensor(bias).reshape(shape)
    return y
