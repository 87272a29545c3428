"""ConvNeXt tiny/small/base/large as torchvision builds them (``torchvision.models.convnext``):
7x7 depthwise convolutions, channels-last LayerNorm and MLP, a learnt per-channel
``layer_scale`` and stochastic depth on every residual branch.

>>> import convscope as cs
>>> model = convnext_tiny(num_classes=10).eval()
>>> with cs.no_grad():
...     model(cs.rand(1, 3, 64, 64)).shape
(1, 10)
>>> model.features[1][0].layer_scale.shape
(96, 1, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from .. import nn
from ..autograd.engine import is_grad_enabled
from ..nn import functional as F
from ..nn import fusion
from ..ops.elementwise import scale_add_from_channels_last
from ..tensor import Tensor
from ._blocks import Conv2dNormActivation, Permute, StochasticDepth, check_no_weights
from ._registry import register_model

__all__ = [
    "CNBlock",
    "CNBlockConfig",
    "ConvNeXt",
    "LayerNorm2d",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` input (normalised channels-last).

    >>> import convscope as cs
    >>> LayerNorm2d(4, eps=1e-6)(cs.rand(2, 4, 3, 3)).shape
    (2, 4, 3, 3)
    """

    independent_samples = True

    def forward(self, x: Tensor) -> Tensor:
        fast = fusion.layer_norm_channels(self, x)  # inference: no permutes, no copies
        if fast is not None:
            return fast
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """Depthwise 7x7, LayerNorm, Linear to 4x, GELU, Linear back, times ``layer_scale``;
    stochastic depth on that branch, then the shortcut."""

    def __init__(
        self,
        dim: int,
        layer_scale: float,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            norm_layer(dim),
            nn.Linear(in_features=dim, out_features=4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(in_features=4 * dim, out_features=dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        dtype = self.block[0].weight.dtype
        self.layer_scale = nn.Parameter(np.full((dim, 1, 1), layer_scale, dtype=dtype))
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    independent_samples = True

    def forward(self, input: Tensor) -> Tensor:
        if len(self.block) == 7 and self._in_place(input, input) and fusion._plain(self.block):
            conv, _, norm, first, act, second, _ = self.block
            fast = fusion.channels_first_block(
                input, conv, norm, first, act, second, self.layer_scale
            )
            if fast is not None:
                return fast
        branch = self.block(input)
        if self._in_place(input, branch):
            # inference: the scaled branch and the sum in one new array, C-contiguous as
            # ``layer_scale * branch + input`` would be, the same two roundings
            data = input.data
            return Tensor(scale_add_from_channels_last(branch.data, self.layer_scale.data, data))
        result = self.layer_scale * branch
        return self.stochastic_depth(result) + input

    def _in_place(self, input: Any, branch: Any) -> bool:
        """Nothing records a graph, the stochastic depth is the identity (evaluation, or
        ``p == 0``) with no hooks, and every operand is a float tensor of one dtype and
        shape."""
        depth = self.stochastic_depth
        scale = self.layer_scale
        return (
            not is_grad_enabled()
            and (not depth.training or depth.p == 0.0)
            and 0.0 <= depth.p <= 1.0
            and depth.mode in ("batch", "row")
            and type(depth).forward is StochasticDepth.forward
            and not depth._forward_hooks
            and not depth._forward_pre_hooks
            and "forward" not in depth.__dict__
            and isinstance(input, Tensor)
            and isinstance(branch, Tensor)
            and input.dtype in (np.float32, np.float64)
            and branch.dtype == input.dtype == scale.dtype
            and branch.shape == input.shape
            and scale.ndim <= input.ndim
            and all(s in (1, n) for s, n in zip(scale.shape[::-1], input.shape[::-1], strict=False))
        )


class CNBlockConfig:
    """One stage: ``num_layers`` blocks of width ``input_channels``, then a downsampling to
    ``out_channels`` (``None``: the last stage)."""

    def __init__(self, input_channels: int, out_channels: int | None, num_layers: int) -> None:
        self.input_channels = input_channels
        self.out_channels = out_channels
        self.num_layers = num_layers

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_channels={self.input_channels}, "
            f"out_channels={self.out_channels}, num_layers={self.num_layers})"
        )


class ConvNeXt(nn.Module):
    """``features`` (a 4x4 stride-4 "patchify" stem, stages of :class:`CNBlock` separated by
    LayerNorm + 2x2 stride-2 convolutions), ``avgpool`` and ``classifier``; block ``i`` of
    ``n`` drops its branch with probability ``stochastic_depth_prob * i / (n - 1)``."""

    def __init__(
        self,
        block_setting: list[CNBlockConfig],
        stochastic_depth_prob: float = 0.0,
        layer_scale: float = 1e-6,
        num_classes: int = 1000,
        block: Callable[..., nn.Module] | None = None,
        norm_layer: Callable[..., nn.Module] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not block_setting:
            raise ValueError("The block_setting should not be empty")
        if not (
            isinstance(block_setting, Sequence)
            and all(isinstance(s, CNBlockConfig) for s in block_setting)
        ):
            raise TypeError("The block_setting should be List[CNBlockConfig]")
        if block is None:
            block = CNBlock
        if norm_layer is None:
            norm_layer = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3,
                block_setting[0].input_channels,
                kernel_size=4,
                stride=4,
                padding=0,
                norm_layer=norm_layer,
                activation_layer=None,
                bias=True,
            )
        ]
        total_blocks = sum(cnf.num_layers for cnf in block_setting)
        block_id = 0
        for cnf in block_setting:
            stage: list[nn.Module] = []
            for _ in range(cnf.num_layers):
                sd_prob = stochastic_depth_prob * block_id / (total_blocks - 1.0)
                stage.append(block(cnf.input_channels, layer_scale, sd_prob))
                block_id += 1
            layers.append(nn.Sequential(*stage))
            if cnf.out_channels is not None:
                layers.append(
                    nn.Sequential(
                        norm_layer(cnf.input_channels),
                        nn.Conv2d(cnf.input_channels, cnf.out_channels, kernel_size=2, stride=2),
                    )
                )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = block_setting[-1]
        last_channels = last.out_channels if last.out_channels is not None else last.input_channels
        self.classifier = nn.Sequential(
            norm_layer(last_channels), nn.Flatten(1), nn.Linear(last_channels, num_classes)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _forward_impl(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))

    independent_samples = True

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


def _convnext(
    arch: str,
    block_setting: list[CNBlockConfig],
    default_sd: float,
    weights: Any,
    kwargs: dict[str, Any],
) -> ConvNeXt:
    check_no_weights(arch, weights, kwargs)
    sd_prob = kwargs.pop("stochastic_depth_prob", default_sd)
    return ConvNeXt(block_setting, stochastic_depth_prob=sd_prob, **kwargs)


@register_model()
def convnext_tiny(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-T (`A ConvNet for the 2020s`, Liu et al. 2022); ``kwargs``: ``num_classes``,
    ``stochastic_depth_prob`` (default 0.1), ``layer_scale`` (default 1e-6)."""
    setting = [
        CNBlockConfig(96, 192, 3),
        CNBlockConfig(192, 384, 3),
        CNBlockConfig(384, 768, 9),
        CNBlockConfig(768, None, 3),
    ]
    return _convnext("convnext_tiny", setting, 0.1, weights, kwargs)


@register_model()
def convnext_small(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-S (stochastic depth 0.4 by default)."""
    setting = [
        CNBlockConfig(96, 192, 3),
        CNBlockConfig(192, 384, 3),
        CNBlockConfig(384, 768, 27),
        CNBlockConfig(768, None, 3),
    ]
    return _convnext("convnext_small", setting, 0.4, weights, kwargs)


@register_model()
def convnext_base(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-B (stochastic depth 0.5 by default)."""
    setting = [
        CNBlockConfig(128, 256, 3),
        CNBlockConfig(256, 512, 3),
        CNBlockConfig(512, 1024, 27),
        CNBlockConfig(1024, None, 3),
    ]
    return _convnext("convnext_base", setting, 0.5, weights, kwargs)


@register_model()
def convnext_large(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-L (stochastic depth 0.5 by default)."""
    setting = [
        CNBlockConfig(192, 384, 3),
        CNBlockConfig(384, 768, 3),
        CNBlockConfig(768, 1536, 27),
        CNBlockConfig(1536, None, 3),
    ]
    return _convnext("convnext_large", setting, 0.5, weights, kwargs)
