"""Normalisation layers: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``GroupNorm``,
``LayerNorm`` and ``LocalResponseNorm``.

BatchNorm and InstanceNorm share ``_NormBase`` (the running statistics are buffers,
``running_mean``, ``running_var`` and ``num_batches_tracked``, so ``state_dict()`` has
PyTorch's keys and PyTorch checkpoints load); the 1d/2d/3d classes only fix the input ranks.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> bn = nn.BatchNorm2d(3)
>>> list(bn.state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
>>> _ = bn(cs.rand(4, 3, 5, 5))
>>> int(bn.num_batches_tracked)
1
>>> nn.GroupNorm(4, 16)
GroupNorm(4, 16, eps=1e-05, affine=True, bias=True)
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtypes
from ..tensor import Tensor
from . import functional as F
from .functional.normalization import _batch_norm
from .module import Module
from .parameter import Parameter


def _dtype(dtype: Any) -> np.dtype:
    return _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)


def _affine_parameters(
    module: Module, shape: tuple[int, ...], dtype: np.dtype, affine: bool, bias: bool
) -> None:
    """``weight`` (ones) and ``bias`` (zeros) of ``shape``, or ``None`` where switched off."""
    if affine:
        module.weight = Parameter(np.ones(shape, dtype))
    else:
        module.register_parameter("weight", None)
    if affine and bias:
        module.bias = Parameter(np.zeros(shape, dtype))
    else:
        module.register_parameter("bias", None)


def _reset_affine(module: Module) -> None:
    if module.weight is not None:
        module.weight.data[...] = 1
    if module.bias is not None:
        module.bias.data[...] = 0


class _NormBase(Module):
    """Per-channel affine parameters and, optionally, running statistics buffers."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = _dtype(dtype)
        _affine_parameters(self, (num_features,), dtype, affine, bias)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, weight to 1 and bias to 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    """Batch statistics per channel in training, running statistics in evaluation; subclasses
    fix the input ranks they accept."""

    _ranks: tuple[int, ...] = ()

    @property
    def independent_samples(self) -> bool:  # type: ignore[override]
        """In eval mode with running statistics (without them it uses the batch's own)."""
        return self.running_mean is not None

    def forward(self, input: Any) -> Tensor:
        return self._normalize(input, None)

    def _normalize(self, input: Any, activation: str | None) -> Tensor:
        """The layer's forward, followed by ``activation`` as one fused operation when it
        uses batch statistics (``nn.fusion`` passes ``"relu"`` or ``"relu6"``)."""
        ndim = np.ndim(input)
        if ndim not in self._ranks:
            wanted = " or ".join(f"{r}D" for r in self._ranks)
            raise ValueError(f"expected {wanted} input (got {ndim}D input)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self._uses_batch_statistics()
        keep = not self.training or self.track_running_stats
        return _batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
            activation,
        )

    def _uses_batch_statistics(self) -> bool:
        return self.training or self.running_mean is None


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` (statistics per channel ``C``).

    >>> BatchNorm1d(16, momentum=None)
    BatchNorm1d(16, eps=1e-05, momentum=None, affine=True, bias=True, track_running_stats=True)
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)``.

    >>> BatchNorm2d(32)
    BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch norm over ``(N, C, D, H, W)``.

    >>> import convscope as cs
    >>> BatchNorm3d(2, affine=False)(cs.rand(2, 2, 3, 3, 3)).shape
    (2, 2, 3, 3, 3)
    """

    _ranks = (5,)


class _InstanceNorm(_NormBase):
    """Statistics per sample and channel over the ``_dims`` spatial dimensions; an unbatched
    input (without ``N``) is accepted too."""

    _dims = 0

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias=bias)

    def _normalize(self, x: Any) -> Tensor:
        return F.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        unbatched = self._dims + 1
        ndim = np.ndim(input)
        if ndim not in (unbatched, unbatched + 1):
            raise ValueError(f"expected {unbatched}D or {unbatched + 1}D input (got {ndim}D input)")
        x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
        feature_dim = ndim - unbatched
        size = x.shape[feature_dim]
        if size != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={feature_dim} to match num_features "
                    f"({self.num_features}), but got: {size}."
                )
            warnings.warn(
                f"input's size at dim={feature_dim} does not match num_features. You can "
                "silence this warning by not passing in num_features, which is not used "
                "because affine=False",
                UserWarning,
                stacklevel=2,
            )
        if ndim == unbatched:
            return self._normalize(x.unsqueeze(0)).squeeze(0)
        return self._normalize(x)


class InstanceNorm1d(_InstanceNorm):
    """Instance norm over ``(N, C, L)`` or unbatched ``(C, L)``.

    >>> InstanceNorm1d(3, affine=True)
    InstanceNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=False)
    """

    _dims = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance norm over ``(N, C, H, W)`` or unbatched ``(C, H, W)``.

    >>> import convscope as cs
    >>> InstanceNorm2d(3)(cs.rand(3, 4, 4)).shape
    (3, 4, 4)
    """

    _dims = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance norm over ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``.

    >>> InstanceNorm3d(2, track_running_stats=True).running_var.tolist()
    [1.0, 1.0]
    """

    _dims = 3


class GroupNorm(Module):
    """Normalise groups of ``num_channels // num_groups`` channels per sample; per-channel
    ``weight`` and ``bias`` when ``affine``.

    >>> import convscope as cs
    >>> GroupNorm(2, 4)(cs.rand(2, 4, 3, 3)).shape
    (2, 4, 3, 3)
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        _affine_parameters(self, (num_channels,), _dtype(dtype), affine, bias)

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        _reset_affine(self)

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dimensions; elementwise ``weight`` and
    ``bias`` of that shape when ``elementwise_affine``.

    >>> LayerNorm(8)
    LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> LayerNorm([2, 3], bias=False).weight.shape
    (2, 3)
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine_parameters(self, self.normalized_shape, _dtype(dtype), elementwise_affine, bias)

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        _reset_affine(self)

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class LocalResponseNorm(Module):
    """Local response normalisation across channels (see
    :func:`convscope.nn.functional.local_response_norm`).

    >>> LocalResponseNorm(5)
    LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "LocalResponseNorm",
]
