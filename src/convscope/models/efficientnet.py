"""EfficientNet B0-B7 and V2 S/M/L as torchvision builds them
(``torchvision.models.efficientnet``): MBConv blocks (expand, depthwise, squeeze-excitation,
project, SiLU) and, for V2, FusedMBConv; residual branches dropped by stochastic depth while
training.

>>> import convscope as cs
>>> model = efficientnet_b0(num_classes=10).eval()
>>> with cs.no_grad():
...     model(cs.rand(1, 3, 64, 64)).shape
(1, 10)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import nn
from ..autograd.engine import is_grad_enabled
from ..nn.fusion import _plain
from ..tensor import Tensor
from ._blocks import (
    Conv2dNormActivation,
    SqueezeExcitation,
    StochasticDepth,
    _make_divisible,
    check_no_weights,
    is_norm2d,
    residual_sequence,
)
from ._registry import register_model

__all__ = [
    "EfficientNet",
    "FusedMBConv",
    "FusedMBConvConfig",
    "MBConv",
    "MBConvConfig",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
]


@dataclass
class _MBConvConfig:
    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int
    block: Callable[..., nn.Module]

    @staticmethod
    def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
        return _make_divisible(channels * width_mult, 8, min_value)


class MBConvConfig(_MBConvConfig):
    """One stage of EfficientNet's table, channels scaled by ``width_mult`` and the number of
    layers by ``depth_mult`` (rounded up)."""

    def __init__(
        self,
        expand_ratio: float,
        kernel: int,
        stride: int,
        input_channels: int,
        out_channels: int,
        num_layers: int,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        block: Callable[..., nn.Module] | None = None,
    ) -> None:
        input_channels = self.adjust_channels(input_channels, width_mult)
        out_channels = self.adjust_channels(out_channels, width_mult)
        num_layers = self.adjust_depth(num_layers, depth_mult)
        super().__init__(
            expand_ratio,
            kernel,
            stride,
            input_channels,
            out_channels,
            num_layers,
            MBConv if block is None else block,
        )

    @staticmethod
    def adjust_depth(num_layers: int, depth_mult: float) -> int:
        return math.ceil(num_layers * depth_mult)


class FusedMBConvConfig(_MBConvConfig):
    """One stage of EfficientNetV2's table made of :class:`FusedMBConv` blocks."""

    def __init__(
        self,
        expand_ratio: float,
        kernel: int,
        stride: int,
        input_channels: int,
        out_channels: int,
        num_layers: int,
        block: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__(
            expand_ratio,
            kernel,
            stride,
            input_channels,
            out_channels,
            num_layers,
            FusedMBConv if block is None else block,
        )


class _Residual(nn.Module):
    """``block``, then stochastic depth and the shortcut when the shapes agree."""

    block: nn.Sequential
    stochastic_depth: StochasticDepth
    use_res_connect: bool

    independent_samples = True

    def forward(self, input: Tensor) -> Tensor:
        if not self.use_res_connect:
            return self.block(input)
        depth = self.stochastic_depth
        idle = not depth.training or depth.p == 0.0
        if idle and not is_grad_enabled() and _plain(depth):  # fuse the addition
            return residual_sequence(self.block, input, input)
        return depth(self.block(input)) + input


class MBConv(_Residual):
    """Expand (1x1), depthwise (``kernel``), squeeze-excitation (to a quarter of the input
    channels, SiLU), project (1x1, no activation)."""

    def __init__(
        self,
        cnf: MBConvConfig,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module],
        se_layer: Callable[..., nn.Module] = SqueezeExcitation,
    ) -> None:
        super().__init__()
        if not (1 <= cnf.stride <= 2):
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers: list[nn.Module] = []
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    expanded,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=nn.SiLU,
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded,
                expanded,
                kernel_size=cnf.kernel,
                stride=cnf.stride,
                groups=expanded,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        squeeze = max(1, cnf.input_channels // 4)
        layers.append(se_layer(expanded, squeeze, activation=partial(nn.SiLU, inplace=True)))
        layers.append(
            Conv2dNormActivation(
                expanded,
                cnf.out_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=None,
            )
        )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels


class FusedMBConv(_Residual):
    """EfficientNetV2's block: one full ``kernel`` convolution (expanding), then a 1x1
    projection; a single convolution when there is no expansion."""

    def __init__(
        self,
        cnf: FusedMBConvConfig,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module],
    ) -> None:
        super().__init__()
        if not (1 <= cnf.stride <= 2):
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers: list[nn.Module] = []
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    expanded,
                    kernel_size=cnf.kernel,
                    stride=cnf.stride,
                    norm_layer=norm_layer,
                    activation_layer=nn.SiLU,
                )
            )
            layers.append(
                Conv2dNormActivation(
                    expanded,
                    cnf.out_channels,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=None,
                )
            )
        else:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    cnf.out_channels,
                    kernel_size=cnf.kernel,
                    stride=cnf.stride,
                    norm_layer=norm_layer,
                    activation_layer=nn.SiLU,
                )
            )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels


class EfficientNet(nn.Module):
    """``features`` (stem, one ``Sequential`` per stage, a 1x1 convolution), ``avgpool`` and
    ``classifier``; block ``i`` of ``n`` drops its branch with probability
    ``stochastic_depth_prob * i / n`` while training."""

    def __init__(
        self,
        inverted_residual_setting: Sequence[MBConvConfig | FusedMBConvConfig],
        dropout: float,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        norm_layer: Callable[..., nn.Module] | None = None,
        last_channel: int | None = None,
    ) -> None:
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("The inverted_residual_setting should not be empty")
        if not (
            isinstance(inverted_residual_setting, Sequence)
            and all(isinstance(s, _MBConvConfig) for s in inverted_residual_setting)
        ):
            raise TypeError("The inverted_residual_setting should be List[MBConvConfig]")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        first = inverted_residual_setting[0].input_channels
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, first, kernel_size=3, stride=2, norm_layer=norm_layer, activation_layer=nn.SiLU
            )
        ]
        total_blocks = sum(cnf.num_layers for cnf in inverted_residual_setting)
        block_id = 0
        for cnf in inverted_residual_setting:
            stage: list[nn.Module] = []
            for _ in range(cnf.num_layers):
                block_cnf = copy.copy(cnf)
                if stage:  # later blocks of a stage keep the width and stride 1
                    block_cnf.input_channels = block_cnf.out_channels
                    block_cnf.stride = 1
                sd_prob = stochastic_depth_prob * float(block_id) / total_blocks
                stage.append(block_cnf.block(block_cnf, sd_prob, norm_layer))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_input = inverted_residual_setting[-1].out_channels
        last_output = last_channel if last_channel is not None else 4 * last_input
        layers.append(
            Conv2dNormActivation(
                last_input,
                last_output,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_output, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif is_norm2d(m):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init_range = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))

    independent_samples = True

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


def _efficientnet_conf(
    arch: str, width_mult: float = 1.0, depth_mult: float = 1.0
) -> tuple[list[MBConvConfig | FusedMBConvConfig], int | None]:
    setting: list[MBConvConfig | FusedMBConvConfig]
    if arch.startswith("efficientnet_b"):
        conf = partial(MBConvConfig, width_mult=width_mult, depth_mult=depth_mult)
        setting = [
            conf(1, 3, 1, 32, 16, 1),
            conf(6, 3, 2, 16, 24, 2),
            conf(6, 5, 2, 24, 40, 2),
            conf(6, 3, 2, 40, 80, 3),
            conf(6, 5, 1, 80, 112, 3),
            conf(6, 5, 2, 112, 192, 4),
            conf(6, 3, 1, 192, 320, 1),
        ]
        return setting, None
    fused, mb = FusedMBConvConfig, MBConvConfig
    if arch == "efficientnet_v2_s":
        setting = [
            fused(1, 3, 1, 24, 24, 2),
            fused(4, 3, 2, 24, 48, 4),
            fused(4, 3, 2, 48, 64, 4),
            mb(4, 3, 2, 64, 128, 6),
            mb(6, 3, 1, 128, 160, 9),
            mb(6, 3, 2, 160, 256, 15),
        ]
    elif arch == "efficientnet_v2_m":
        setting = [
            fused(1, 3, 1, 24, 24, 3),
            fused(4, 3, 2, 24, 48, 5),
            fused(4, 3, 2, 48, 80, 5),
            mb(4, 3, 2, 80, 160, 7),
            mb(6, 3, 1, 160, 176, 14),
            mb(6, 3, 2, 176, 304, 18),
            mb(6, 3, 1, 304, 512, 5),
        ]
    elif arch == "efficientnet_v2_l":
        setting = [
            fused(1, 3, 1, 32, 32, 4),
            fused(4, 3, 2, 32, 64, 7),
            fused(4, 3, 2, 64, 96, 7),
            mb(4, 3, 2, 96, 192, 10),
            mb(6, 3, 1, 192, 224, 19),
            mb(6, 3, 2, 224, 384, 25),
            mb(6, 3, 1, 384, 640, 7),
        ]
    else:
        raise ValueError(f"Unsupported model type {arch}")
    return setting, 1280


# name -> (width_mult, depth_mult, default dropout, BatchNorm options)
_VARIANTS: dict[str, tuple[float, float, float, dict[str, float]]] = {
    "efficientnet_b0": (1.0, 1.0, 0.2, {}),
    "efficientnet_b1": (1.0, 1.1, 0.2, {}),
    "efficientnet_b2": (1.1, 1.2, 0.3, {}),
    "efficientnet_b3": (1.2, 1.4, 0.3, {}),
    "efficientnet_b4": (1.4, 1.8, 0.4, {}),
    "efficientnet_b5": (1.6, 2.2, 0.4, {"eps": 0.001, "momentum": 0.01}),
    "efficientnet_b6": (1.8, 2.6, 0.5, {"eps": 0.001, "momentum": 0.01}),
    "efficientnet_b7": (2.0, 3.1, 0.5, {"eps": 0.001, "momentum": 0.01}),
    "efficientnet_v2_s": (1.0, 1.0, 0.2, {"eps": 1e-03}),
    "efficientnet_v2_m": (1.0, 1.0, 0.3, {"eps": 1e-03}),
    "efficientnet_v2_l": (1.0, 1.0, 0.4, {"eps": 1e-03}),
}


def _efficientnet(arch: str, weights: Any, kwargs: dict[str, Any]) -> EfficientNet:
    check_no_weights(arch, weights, kwargs)
    width, depth, dropout, norm = _VARIANTS[arch]
    setting, last_channel = _efficientnet_conf(arch, width, depth)
    if norm:  # fixed by the variant, as in torchvision (which refuses a second value too)
        if "norm_layer" in kwargs:
            raise TypeError(f"{arch}() got multiple values for keyword argument 'norm_layer'")
        kwargs["norm_layer"] = partial(nn.BatchNorm2d, **norm)
    return EfficientNet(
        setting, kwargs.pop("dropout", dropout), last_channel=last_channel, **kwargs
    )


@register_model()
def efficientnet_b0(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B0 (Tan and Le 2019); ``kwargs``: ``num_classes``, ``dropout``,
    ``stochastic_depth_prob``, ``norm_layer``."""
    return _efficientnet("efficientnet_b0", weights, kwargs)


@register_model()
def efficientnet_b1(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B1."""
    return _efficientnet("efficientnet_b1", weights, kwargs)


@register_model()
def efficientnet_b2(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B2."""
    return _efficientnet("efficientnet_b2", weights, kwargs)


@register_model()
def efficientnet_b3(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B3."""
    return _efficientnet("efficientnet_b3", weights, kwargs)


@register_model()
def efficientnet_b4(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B4."""
    return _efficientnet("efficientnet_b4", weights, kwargs)


@register_model()
def efficientnet_b5(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B5 (BatchNorm eps 1e-3, momentum 0.01)."""
    return _efficientnet("efficientnet_b5", weights, kwargs)


@register_model()
def efficientnet_b6(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B6."""
    return _efficientnet("efficientnet_b6", weights, kwargs)


@register_model()
def efficientnet_b7(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B7."""
    return _efficientnet("efficientnet_b7", weights, kwargs)


@register_model()
def efficientnet_v2_s(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNetV2-S (Tan and Le 2021: FusedMBConv in the early stages)."""
    return _efficientnet("efficientnet_v2_s", weights, kwargs)


@register_model()
def efficientnet_v2_m(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNetV2-M."""
    return _efficientnet("efficientnet_v2_m", weights, kwargs)


@register_model()
def efficientnet_v2_l(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> EfficientNet:
    """EfficientNetV2-L."""
    return _efficientnet("efficientnet_v2_l", weights, kwargs)
