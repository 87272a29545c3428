"""Building blocks shared by the architectures, with torchvision's names (``torchvision.ops``).

``Conv2dNormActivation`` / ``Conv3dNormActivation`` (a convolution, a norm layer and an
activation as one ``Sequential``), ``SqueezeExcitation``, ``StochasticDepth``, ``Permute``,
``_make_divisible`` and the helpers every builder uses (refusing ``weights``, fusing a residual
addition into the last convolution at inference).

>>> import convscope as cs
>>> block = Conv2dNormActivation(3, 8, kernel_size=3, stride=2)
>>> block
Conv2dNormActivation(
  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
  (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (2): ReLU(inplace=True)
)
>>> block(cs.rand(1, 3, 16, 16)).shape
(1, 8, 8, 8)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..autograd.engine import is_grad_enabled
from ..nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    BatchNorm3d,
    Conv2d,
    Conv3d,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
)
from ..nn.fusion import (
    _is_conv,
    _is_eval_batch_norm,
    _plain,
    conv_bn_act,
    run_sequence,
    squeeze_excitation,
)
from ..random import default_generator
from ..tensor import Tensor

_LOAD_HINT = "m = cs.models.{name}(); m.load_state_dict(cs.load_torch('{file}.pth'))"


def check_no_weights(name: str, weights: Any, kwargs: dict[str, Any]) -> None:
    """Refuse pretrained weights: convscope never downloads anything.

    ``name`` is the builder's path under ``cs.models`` (``"video.r3d_18"``).  Also takes
    torchvision's legacy ``pretrained=`` argument (``False`` is accepted).

    >>> import textwrap
    >>> try:
    ...     check_no_weights("resnet18", "IMAGENET1K_V1", {})
    ... except ValueError as error:
    ...     print(textwrap.fill(str(error), 80))
    convscope does not download weights (got weights='IMAGENET1K_V1'). Build the
    model with weights=None and load a torchvision state dict: m =
    cs.models.resnet18(); m.load_state_dict(cs.load_torch('resnet18.pth'))
    """
    pretrained = kwargs.pop("pretrained", False)
    if weights is None and pretrained:
        weights = "DEFAULT"
    if weights is not None:
        raise ValueError(
            f"convscope does not download weights (got weights={weights!r}). Build the model "
            "with weights=None and load a torchvision state dict: "
            + _LOAD_HINT.format(name=name, file=name.rpartition(".")[2])
        )


def is_norm2d(module: Module) -> bool:
    """``BatchNorm2d`` or ``GroupNorm``: the layers torchvision's initialisers reset to 1/0."""
    from .. import nn

    group_norm = getattr(nn, "GroupNorm", None)
    return isinstance(module, BatchNorm2d) or (
        group_norm is not None and isinstance(module, group_norm)
    )


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), never more than 10% below ``v``: the channel counts of the MobileNets.

    >>> _make_divisible(32 * 0.75, 8), _make_divisible(10, 8), _make_divisible(11.9, 8)
    (24, 16, 16)
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return rounded


def _ntuple(value: Any, n: int) -> tuple:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(value)
    return (value,) * n


class ConvNormActivation(Sequential):
    """Convolution, then an optional norm layer, then an optional activation.

    ``padding=None`` keeps the spatial size at stride 1 (``(k - 1) // 2 * dilation``); the
    convolution has a bias only when there is no norm layer, unless ``bias`` says otherwise.
    Use :class:`Conv2dNormActivation` or :class:`Conv3dNormActivation`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...] = 3,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str | None = None,
        groups: int = 1,
        norm_layer: Callable[..., Module] | None = BatchNorm2d,
        activation_layer: Callable[..., Module] | None = ReLU,
        dilation: int | tuple[int, ...] = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
        conv_layer: Callable[..., Module] = Conv2d,
    ) -> None:
        if padding is None:
            if isinstance(kernel_size, int) and isinstance(dilation, int):
                padding = (kernel_size - 1) // 2 * dilation
            else:
                dims = len(kernel_size) if isinstance(kernel_size, Sequence) else len(dilation)
                kernel_size, dilation = _ntuple(kernel_size, dims), _ntuple(dilation, dims)
                padding = tuple(
                    (k - 1) // 2 * d for k, d in zip(kernel_size, dilation, strict=True)
                )
        if bias is None:
            bias = norm_layer is None
        layers = [
            conv_layer(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels
        if type(self) is ConvNormActivation:
            warnings.warn(
                "Don't use ConvNormActivation directly, please use Conv2dNormActivation and "
                "Conv3dNormActivation instead.",
                stacklevel=2,
            )


class Conv2dNormActivation(ConvNormActivation):
    """``Conv2d`` -> norm (default ``BatchNorm2d``) -> activation (default ``ReLU``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str | None = None,
        groups: int = 1,
        norm_layer: Callable[..., Module] | None = BatchNorm2d,
        activation_layer: Callable[..., Module] | None = ReLU,
        dilation: int | tuple[int, int] = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            groups,
            norm_layer,
            activation_layer,
            dilation,
            inplace,
            bias,
            Conv2d,
        )


class Conv3dNormActivation(ConvNormActivation):
    """``Conv3d`` -> norm (default ``BatchNorm3d``) -> activation (default ``ReLU``).

    >>> import convscope as cs
    >>> Conv3dNormActivation(2, 4)(cs.rand(1, 2, 3, 5, 5)).shape
    (1, 4, 3, 5, 5)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] | str | None = None,
        groups: int = 1,
        norm_layer: Callable[..., Module] | None = BatchNorm3d,
        activation_layer: Callable[..., Module] | None = ReLU,
        dilation: int | tuple[int, int, int] = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            groups,
            norm_layer,
            activation_layer,
            dilation,
            inplace,
            bias,
            Conv3d,
        )


class SqueezeExcitation(Module):
    """Channel attention: average-pool to 1x1, squeeze (``fc1``), ``activation``, expand
    (``fc2``), ``scale_activation``, then multiply the input by that per-channel scale.

    >>> import convscope as cs
    >>> se = SqueezeExcitation(8, 2)
    >>> se(cs.rand(2, 8, 5, 5)).shape, [n for n, _ in se.named_parameters()][:2]
    ((2, 8, 5, 5), ['fc1.weight', 'fc1.bias'])
    """

    def __init__(
        self,
        input_channels: int,
        squeeze_channels: int,
        activation: Callable[..., Module] = ReLU,
        scale_activation: Callable[..., Module] = Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: Tensor) -> Tensor:
        scale = self.activation(self.fc1(self.avgpool(input)))
        return self.scale_activation(self.fc2(scale))

    independent_samples = True

    def forward(self, input: Tensor) -> Tensor:
        fast = squeeze_excitation(
            input, self.avgpool, self.fc1, self.activation, self.fc2, self.scale_activation
        )
        return self._scale(input) * input if fast is None else fast


def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True) -> Tensor:
    """Zero whole rows of a batch (``mode='row'``) or the whole batch (``'batch'``) with
    probability ``p`` while training, scaling what survives by ``1 / (1 - p)``; the identity
    otherwise.  Draws from ``convscope.random.default_generator()``.

    >>> import convscope as cs
    >>> _ = cs.manual_seed(0)
    >>> out = stochastic_depth(cs.ones(6, 2), 0.5, "row").numpy()
    >>> sorted(set(out.ravel().tolist())), bool((out[:, 0] == out[:, 1]).all())
    ([0.0, 2.0], True)
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    survival = 1.0 - p
    ndim = input.ndim
    size = (input.shape[0],) + (1,) * (ndim - 1) if mode == "row" else (1,) * ndim
    noise = (default_generator().random(size) < survival).astype(input.dtype)
    if survival > 0.0:
        noise /= input.dtype.type(survival)
    return input * noise


class StochasticDepth(Module):
    """:func:`stochastic_depth` as a layer (active in training mode only).

    >>> StochasticDepth(p=0.1, mode="row")
    StochasticDepth(p=0.1, mode=row)
    """

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    independent_samples = True

    def forward(self, input: Tensor) -> Tensor:
        return stochastic_depth(input, self.p, self.mode, self.training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, mode={self.mode})"


class Permute(Module):
    """Reorder the dimensions of the input (``ConvNeXt`` goes channels-last and back).

    >>> import convscope as cs
    >>> Permute([0, 2, 3, 1])(cs.zeros(1, 3, 4, 5)).shape
    (1, 4, 5, 3)
    """

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    @property
    def independent_samples(self) -> bool:  # type: ignore[override]
        """The batch dimension stays first."""
        return list(self.dims)[:1] == [0]

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


def _value(residual: Any) -> Any:
    """A residual given as a tensor, or as a function computing it (called when needed)."""
    return residual() if callable(residual) else residual


def _finish(y: Any, residual: Any, act: Module | None) -> Any:
    y = y + _value(residual)
    return y if act is None else act(y)


def conv_bn_residual(x: Any, conv: Module, bn: Module, act: Module | None, residual: Any) -> Tensor:
    """``act(bn(conv(x)) + residual)``, ``residual`` a tensor or a function returning one
    (a shortcut branch).  Layer by layer the shortcut runs after ``bn``, as in torchvision
    (hooks and summaries see that order); at inference without gradients it runs first and
    the addition happens inside the convolution's fused epilogue.

    >>> import convscope as cs
    >>> from convscope import nn
    >>> conv, bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4).eval()
    >>> x = cs.rand(1, 4, 6, 6)
    >>> with cs.no_grad():
    ...     fused = conv_bn_residual(x, conv, bn, nn.ReLU(), lambda: x)
    >>> bool((fused - nn.ReLU()(bn(conv(x)) + x)).abs().max() < 1e-5)
    True
    """
    if not is_grad_enabled() and all(_plain(m) for m in (conv, bn, act) if m is not None):
        return conv_bn_act(x, conv, bn, act, residual=_value(residual))
    return _finish(bn(conv(x)), residual, act)


def residual_sequence(seq: Sequential, x: Any, residual: Any, act: Module | None = None) -> Tensor:
    """``act(seq(x) + residual)`` (``act`` optional; ``residual`` a tensor or a function
    returning one, called after ``seq`` when layers run one by one).  At inference without
    gradients the addition (and ``act``) run inside the last convolution's fused epilogue when
    ``seq`` ends with ``Conv, BatchNorm`` (possibly inside a nested ``Conv*NormActivation``).

    >>> import convscope as cs
    >>> from convscope import nn
    >>> seq = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    >>> x = cs.rand(1, 4, 6, 6)
    >>> with cs.no_grad():
    ...     fused, plain = residual_sequence(seq, x, x), seq[1](seq[0](x)) + x
    >>> bool((fused - plain).abs().max() < 1e-5)
    True
    """
    if is_grad_enabled() or not isinstance(seq, Sequential) or not _plain(seq) or not len(seq):
        return _finish(seq(x), residual, act)
    *head, last = list(seq)
    if type(last).forward is Sequential.forward and _plain(last) and len(last):
        return residual_sequence(last, run_sequence(head, x), residual, act)
    if head and _is_conv(head[-1]) and _is_eval_batch_norm(last):
        y = run_sequence(head[:-1], x)
        return conv_bn_act(y, head[-1], last, act, _value(residual))
    if _is_conv(last):
        return conv_bn_act(run_sequence(head, x), last, None, act, _value(residual))
    return _finish(run_sequence([*head, last], x), residual, act)
