"""MobileNetV2 as torchvision builds it (``torchvision.models.mobilenetv2``): inverted
residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection) with ReLU6.

>>> import convscope as cs
>>> model = mobilenet_v2(num_classes=10, width_mult=0.5).eval()
>>> with cs.no_grad():
...     model(cs.rand(1, 3, 64, 64)).shape
(1, 10)
>>> sum(p.numel() for p in mobilenet_v2().parameters())
3504872
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import nn
from ..tensor import Tensor
from ._blocks import (
    Conv2dNormActivation,
    _make_divisible,
    check_no_weights,
    is_norm2d,
    residual_sequence,
)
from ._registry import register_model

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenet_v2"]


class InvertedResidual(nn.Module):
    """Expand by ``expand_ratio`` (1x1), depthwise 3x3 at ``stride``, project to ``oup`` (1x1,
    no activation); the input is added back when the shapes agree."""

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.stride = stride
        if stride not in [1, 2]:
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = self.stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                Conv2dNormActivation(
                    inp, hidden_dim, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6
                )
            )
        layers += [
            Conv2dNormActivation(
                hidden_dim,
                hidden_dim,
                stride=stride,
                groups=hidden_dim,
                norm_layer=norm_layer,
                activation_layer=nn.ReLU6,
            ),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    independent_samples = True

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return residual_sequence(self.conv, x, x)
        return self.conv(x)


def init_mobilenet(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation: convolutions ``kaiming_normal_`` (fan-out),
    norms one/zero, linear layers normal with std 0.01, biases zero."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif is_norm2d(m):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV2(nn.Module):
    """``features`` (a stem, the inverted residual stages of ``inverted_residual_setting``
    rows ``[t, c, n, s]``, a 1x1 convolution to ``last_channel``) and ``classifier``."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: list[list[int]] | None = None,
        round_nearest: int = 8,
        block: Callable[..., nn.Module] | None = None,
        norm_layer: Callable[..., nn.Module] | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if block is None:
            block = InvertedResidual
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        input_channel, last_channel = 32, 1280
        if inverted_residual_setting is None:
            inverted_residual_setting = [  # expansion t, channels c, repeats n, stride s
                [1, 16, 1, 1],
                [6, 24, 2, 2],
                [6, 32, 3, 2],
                [6, 64, 4, 2],
                [6, 96, 3, 1],
                [6, 160, 3, 2],
                [6, 320, 1, 1],
            ]
        if len(inverted_residual_setting) == 0 or len(inverted_residual_setting[0]) != 4:
            raise ValueError(
                "inverted_residual_setting should be non-empty or a 4-element list, got "
                f"{inverted_residual_setting}"
            )
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [
            Conv2dNormActivation(
                3, input_channel, stride=2, norm_layer=norm_layer, activation_layer=nn.ReLU6
            )
        ]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(
                    block(
                        input_channel, output_channel, stride, expand_ratio=t, norm_layer=norm_layer
                    )
                )
                input_channel = output_channel
        features.append(
            Conv2dNormActivation(
                input_channel,
                self.last_channel,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.ReLU6,
            )
        )
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(self.last_channel, num_classes),
        )
        init_mobilenet(self)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.features(x)
        # a function, not a layer, exactly as torchvision (summaries list no pooling row)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(x.flatten(1))

    independent_samples = True

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


@register_model()
def mobilenet_v2(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 (`Inverted Residuals and Linear Bottlenecks`, Sandler et al. 2018);
    ``kwargs`` go to :class:`MobileNetV2` (``num_classes``, ``width_mult``, ``dropout``...)."""
    check_no_weights("mobilenet_v2", weights, kwargs)
    return MobileNetV2(**kwargs)
