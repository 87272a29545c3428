"""Differentiable pooling, resampling and ``log_sigmoid``: the array kernels of ``ops.pool``
(or a NumPy formula) plus their adjoints, recorded for autograd.

>>> import convscope as cs
>>> from convscope.autograd.nn_ops import log_sigmoid
>>> x = cs.tensor([0.0], requires_grad=True)
>>> log_sigmoid(x).backward(cs.ones(1))
>>> x.grad.tolist()
[0.5]
"""

from __future__ import annotations

import numpy as np

from ..ops import pool as pool_ops
from ..ops.tiling import ConvGeometry
from ..tensor import Tensor
from .engine import attach, is_grad_enabled


def max_pool(
    x: Tensor, geom: ConvGeometry, return_indices: bool = False
) -> tuple[Tensor, np.ndarray | None]:
    """Max pooling of a batched tensor; also returns the flat spatial index of each maximum
    when asked or needed for the gradient (``None`` otherwise: the values-only kernel runs).

    >>> import convscope as cs
    >>> from convscope.ops.pool import pool_geometry
    >>> geom = pool_geometry((1, 1, 3), (2,), (1,), (0,), (1,), False)
    >>> y, where = max_pool(cs.tensor([[[1.0, 3.0, 2.0]]]), geom, return_indices=True)
    >>> y.tolist(), where.tolist()
    ([[[3.0, 3.0]]], [[[1, 1]]])
    """
    if not return_indices and not (is_grad_enabled() and x.requires_grad):
        return Tensor(pool_ops.max_pool_values(x.data, geom)), None
    values, indices = pool_ops.max_pool(x.data, geom)
    shape = x.shape
    return attach(
        Tensor(values),
        (x,),
        lambda g, n: (pool_ops.max_pool_backward(g, indices, shape),),
        "MaxPool",
    ), indices


def avg_pool(
    x: Tensor, geom: ConvGeometry, count_include_pad: bool, divisor_override: int | None
) -> Tensor:
    """Average pooling of a batched tensor.

    >>> import convscope as cs
    >>> from convscope.ops.pool import pool_geometry
    >>> geom = pool_geometry((1, 1, 3), (2,), (2,), (1,), (1,), False)
    >>> avg_pool(cs.tensor([[[2.0, 4.0, 6.0]]]), geom, False, None).tolist()
    [[[2.0, 5.0]]]
    """
    out = pool_ops.avg_pool(x.data, geom, count_include_pad, divisor_override)
    return attach(
        Tensor(out),
        (x,),
        lambda g, n: (pool_ops.avg_pool_backward(g, geom, count_include_pad, divisor_override),),
        "AvgPool",
    )


def segment_means(x: Tensor, segments: pool_ops.Segments, name: str) -> Tensor:
    """Means over per-axis segments of the trailing axes (adaptive pooling, nearest resampling).

    >>> import convscope as cs
    >>> from convscope.ops.pool import adaptive_segments
    >>> segment_means(cs.tensor([1.0, 2.0, 3.0]), [adaptive_segments(3, 2)], "Mean").tolist()
    [1.5, 2.5]
    """
    shape = x.shape
    return attach(
        Tensor(pool_ops.segment_means(x.data, segments)),
        (x,),
        lambda g, n: (pool_ops.segment_means_backward(g, segments, shape),),
        name,
    )


def log_sigmoid(x: Tensor) -> Tensor:
    """``log(sigmoid(x))`` without overflow: ``min(x, 0) - log1p(exp(-|x|))``.

    >>> import convscope as cs
    >>> round(log_sigmoid(cs.tensor([-1000.0, 0.0])).tolist()[0])
    -1000
    """
    a = x.data
    out = (np.minimum(a, 0) - np.log1p(np.exp(-np.abs(a)))).astype(a.dtype, copy=False)
    # the derivative is sigmoid(-x) = exp(log_sigmoid(-x)) = exp(out - x): never overflows
    return attach(Tensor(out), (x,), lambda g, n: (g * np.exp(out - a),), "LogSigmoid")
