"""Differentiable normalisations: one op with one backward rule each, not a chain of generic ops.

:func:`normalize` is BatchNorm, GroupNorm, InstanceNorm and LayerNorm in training form (batch
statistics) on an ``(A, C, S)`` view of the input; :class:`Units` says how the per-row
statistics of :func:`convscope.ops.normalization.moments` merge into the layer's units.  Its
backward is the standard fused formula ``dx = rstd * (dy_hat - mean(dy_hat) - x_hat *
mean(dy_hat * x_hat))`` built from two float64-accumulated reductions per row.
:func:`channel_affine` is the evaluation form of BatchNorm (``x * scale + shift`` per channel).

>>> import convscope as cs
>>> from convscope.autograd.normalization import Units, normalize
>>> x = cs.tensor([[1.0, 3.0]], requires_grad=True)
>>> y, mean, var = normalize(x, x.data.reshape(1, 1, 2), Units("rows"), None, None, 0.0)
>>> y.tolist(), mean.tolist(), var.tolist()
([[-1.0, 1.0]], [[2.0]], [[1.0]])
>>> (y * cs.tensor([[1.0, 2.0]])).sum().backward()
>>> x.grad.tolist()
[[0.0, 0.0]]
"""

from __future__ import annotations

import numpy as np

from ..ops import normalization as ops
from ..tensor import Tensor
from .engine import attach


class Units:
    """How the rows ``(a, c)`` of an ``(A, C, S)`` view form the normalised units.

    ``"channels"``: one unit per channel, over all ``a`` (BatchNorm); ``"groups"``: units of
    ``groups`` consecutive channel runs per ``a`` (GroupNorm); ``"rows"``: every row is a unit
    (InstanceNorm, LayerNorm).  Per-unit arrays are ``(C,)``, ``(A, groups)`` and ``(A, C)``.

    >>> Units("groups", 2).reduce(np.arange(8.0).reshape(2, 4)).tolist()
    [[1.0, 5.0], [9.0, 13.0]]
    """

    def __init__(self, kind: str, groups: int = 1) -> None:
        if kind not in ("channels", "groups", "rows"):
            raise ValueError(f"unknown unit kind {kind!r}")
        self.kind, self.groups = kind, groups

    def rows_per_unit(self, shape: tuple[int, int, int]) -> int:
        if self.kind == "channels":
            return shape[0]
        return shape[1] // self.groups if self.kind == "groups" else 1

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Sum per-row values ``(A, C)`` into per-unit values."""
        if self.kind == "channels":
            return values.sum(axis=0)
        if self.kind == "groups":
            a, c = values.shape
            return values.reshape(a, self.groups, c // self.groups).sum(axis=2)
        return values

    def expand(self, values: np.ndarray, channels: int) -> np.ndarray:
        """Per-unit values as per-channel ``(C,)`` or per-row ``(A, C)`` constants."""
        if self.kind == "groups":
            return np.repeat(values, channels // self.groups, axis=1)
        return values

    def merge(
        self, mean: np.ndarray, m2: np.ndarray, shape: tuple[int, int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-unit mean and (biased) variance from per-row means and squared deviations
        (Chan's parallel formula, float64)."""
        rows = self.rows_per_unit(shape)
        if rows == 1:
            return mean, m2 / shape[2]
        unit_mean = self.reduce(mean) / rows
        spread = mean - self.expand(unit_mean, shape[1])
        spread *= spread
        unit_m2 = self.reduce(m2) + shape[2] * self.reduce(spread)
        return unit_mean, unit_m2 / (rows * shape[2])


def _param(value: Tensor | None) -> np.ndarray | None:
    return None if value is None else value.data.reshape(-1)


def normalize(
    x: Tensor,
    x3: np.ndarray,
    units: Units,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
    columns: bool = False,
    name: str = "NativeNorm",
    activation: str | None = None,
) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """Normalise ``x`` (whose data is viewed C-contiguous as ``x3``, ``(A, C, S)``) with its
    own statistics per unit, then scale by ``weight`` and shift by ``bias``: one per channel,
    or, with ``columns``, one per element of ``S`` (LayerNorm).  Returns the result (``x``'s
    shape and dtype) and the float64 per-unit mean and biased variance.

    ``activation`` (``"relu"`` or ``"relu6"``, per-channel units only) applies it to the
    result in place and fuses its backward into the normalisation's (the gradient gated by
    the activation's output inside the two backward passes, see ``ops.normalization.Gate``):
    the values and gradients of the two layers run one after the other, with one full-size
    array and one pass fewer each way.
    """
    if activation is not None and (columns or activation not in _CLAMPS):
        raise ValueError(f"no fused {activation!r} after this normalisation")
    dtype, shape = x3.dtype, x3.shape
    count = units.rows_per_unit(shape) * shape[2]
    channels = shape[1]
    w, b = _param(weight), _param(bias)
    clamp = None if activation is None else _CLAMPS[activation]
    # BatchNorm: one compiled job per channel (statistics, then its rows normalised while in
    # cache); the same steps as below
    fused = None
    if units.kind == "channels" and not columns:
        fused = ops.channel_normalize(x3, w, b, eps, clamp)
    if fused is not None:
        y, stats, centre = fused
        mean, var, rstd_u, delta_u = stats
        rstd, delta = rstd_u, delta_u
        if shape[0] == 1:  # as Units.merge gives them: per row
            mean, var = mean[None], var[None]
    else:
        mean, var = units.merge(*ops.moments(x3), shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            rstd_u = 1.0 / np.sqrt(var + eps)
        # a centre rounded to the input dtype is subtracted exactly from nearby values; the
        # rounding of the mean (delta) moves into the per-row constants
        centre_u = mean.astype(dtype)
        delta_u = mean - centre_u
        centre, rstd, delta = (units.expand(v, channels) for v in (centre_u, rstd_u, delta_u))
        with np.errstate(invalid="ignore"):
            if columns:
                scale, shift = rstd, -delta * rstd
                col_w = None if w is None else w.astype(dtype, copy=False)
                col_b = None if b is None else b.astype(dtype, copy=False)
                y = ops.affine(x3, scale, shift, centre=centre, col_scale=col_w, col_shift=col_b)
            else:
                scale = rstd if w is None else rstd * w
                shift = -delta * scale if b is None else b - delta * scale
                y = ops.affine(x3, scale, shift, centre=centre, clamp=clamp)
    gate = None if activation is None else _gate(y, activation)

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        need_x, need_w, need_b = needs
        g3 = np.ascontiguousarray(g, dtype=dtype).reshape(shape)
        gx = gw = gb = None
        if columns:
            col_w = None if w is None else w.astype(dtype, copy=False)
            if need_x:
                total, dot = ops.grad_sums(g3, x3, centre, col_w)
                dot -= delta * total
                k = rstd * rstd * dot / count
                c = rstd * (k * delta - total / count)
                gx = ops.combine(g3, x3, centre, rstd, -rstd * k, c, col_w)
            if need_w or need_b:
                gw, gb = ops.column_sums(g3, x3, centre, rstd, -delta * rstd)
        elif fused is not None and (
            done := ops.channel_backward(g3, x3, centre, stats, w, gate, need_x)
        ):
            sums, gx = done
            gw = rstd * sums[1] if need_w else None
            gb = sums[0] if need_b else None
        else:
            total, dot = ops.grad_sums(g3, x3, centre, gate=gate)
            dot -= delta * total
            if need_w:
                gw = (rstd * dot).sum(axis=0) if rstd.ndim == 2 else rstd * dot.sum(axis=0)
            if need_b:
                gb = total.sum(axis=0)
            if need_x:
                if w is not None:
                    total, dot = total * w, dot * w
                mean_h = units.reduce(total) / count
                k = rstd_u * rstd_u * units.reduce(dot) / count
                k, mean_h = units.expand(k, channels), units.expand(mean_h, channels)
                a = rstd if w is None else rstd * w
                gx = ops.combine(
                    g3, x3, centre, a, -rstd * k, rstd * (k * delta - mean_h), gate=gate
                )
        return (
            None if gx is None else gx.reshape(x.shape),
            gw.reshape(weight.shape) if need_w else None,
            gb.reshape(bias.shape) if need_b else None,
        )

    out = Tensor(y.reshape(x.shape))
    return attach(out, (x, weight, bias), rule, name), mean, var


#: a fused activation as the clamp of the normalisation's output
_CLAMPS = {"relu": (0.0, float("inf")), "relu6": (0.0, 6.0)}


def _gate(y: np.ndarray, activation: str) -> ops.Gate:
    """The gate of ``activation``'s backward on its output ``y``, the rule PyTorch's backward
    follows: ReLU's gradient passes where the output is above 0 (NaN and +inf included),
    ReLU6's (Hardtanh's) where it is strictly inside (0, 6)."""
    if activation == "relu":
        return y, 0.0, float("nan"), True
    return y, *_CLAMPS[activation], False


def channel_affine(
    x: Tensor,
    x3: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> Tensor:
    """BatchNorm with given statistics (evaluation): ``y = x * scale + shift`` per channel
    (axis 1 of the ``(N, C, S)`` view ``x3``), ``scale = weight / sqrt(var + eps)`` and
    ``shift = bias - mean * scale`` computed once in float64, then one pass over the data.

    >>> import convscope as cs
    >>> x = cs.tensor([[1.0], [3.0]])
    >>> channel_affine(x, x.data.reshape(2, 1, 1), np.array([2.0]), np.array([4.0]), None,
    ...                None, 0.0).tolist()
    [[-0.5], [0.5]]
    """
    dtype, shape = x3.dtype, x3.shape
    mean64, var64 = mean.astype(np.float64), var.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rinv = 1.0 / np.sqrt(var64 + eps)
        w, b = _param(weight), _param(bias)
        scale = rinv if w is None else rinv * w
        shift = -mean64 * scale if b is None else b - mean64 * scale
        y = ops.affine(x3, scale, shift)

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        need_x, need_w, need_b = needs
        g3 = np.ascontiguousarray(g, dtype=dtype).reshape(shape)
        gx = gw = gb = None
        if need_x:
            gx = (g3 * scale.astype(dtype)[:, None]).reshape(x.shape)
        if need_w or need_b:
            centre = mean64.astype(dtype)
            total, dot = ops.grad_sums(g3, x3, centre)
            if need_w:
                gw = rinv * (dot.sum(axis=0) - (mean64 - centre) * total.sum(axis=0))
                gw = gw.reshape(weight.shape)
            if need_b:
                gb = total.sum(axis=0).reshape(bias.shape)
        return gx, gw, gb

    return attach(Tensor(y.reshape(x.shape)), (x, weight, bias), rule, "NativeBatchNorm")


def local_response_norm(x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """Local response normalisation across channels (axis 1) of a ``(N, C, ...)`` tensor.

    >>> import convscope as cs
    >>> local_response_norm(cs.ones(1, 2, 1), 2, 1.0, 1.0, 1.0).flatten().tolist()
    [0.6666666865348816, 0.5]
    """
    x3 = np.ascontiguousarray(x.data).reshape(x.shape[0], x.shape[1], -1)
    y, base = ops.local_response_norm(x3, size, alpha, beta, k)

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        g3 = np.ascontiguousarray(g, dtype=x3.dtype).reshape(x3.shape)
        grad = ops.local_response_norm_backward(g3, x3, y, base, size, alpha, beta)
        return (grad.reshape(x.shape),)

    return attach(Tensor(y.reshape(x.shape)), (x,), rule, "LocalResponseNorm")


__all__ = ["Units", "channel_affine", "local_response_norm", "normalize"]
