"""Apply a ``Conv2d`` to images (tutorial seed 001): the layer, the forward pass, the activation.

Images are ``(3, H, W)`` float arrays in [0, 1] (see :mod:`convscope.io.image`); a batch is
``(N, 3, H, W)``.  The layer is seeded-random (PyTorch's default initialisation), classic
filters (:mod:`convscope.apps.filters`) or weights from a checkpoint
(:mod:`convscope.apps.kernels`).  A layer expecting one input channel sees the luminance.

>>> import numpy as np
>>> image = np.random.default_rng(0).random((3, 8, 10), dtype=np.float32)
>>> maps = feature_maps(image)                # seed 001: Conv2d(3, 4, 3, 1, 1), sigmoid
>>> maps.shape, bool(((maps > 0) & (maps < 1)).all())
((4, 8, 10), True)
>>> feature_maps(image, random_conv(seed=1, out_channels=2, kernel_size=3, stride=2)).shape
(2, 4, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import geometry, nn
from ..autograd import no_grad
from ..creation import from_numpy
from ..random import manual_seed
from .filters import LUMA
from .kernels import ConvLayer

#: what happens to the layer's output before it is shown or saved
ACTIVATIONS = ("sigmoid", "none", "minmax")
#: the layer of tutorial seed 001
SEED_001 = {"out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1}


def random_conv(seed: int = 0, in_channels: int = 3, **conv_options: Any) -> nn.Conv2d:
    """``Conv2d(in_channels, **conv_options)`` with PyTorch's default initialisation drawn
    after ``manual_seed(seed)``; with no options, the seed-001 layer ``Conv2d(3, 4, 3, 1, 1)``.
    """
    manual_seed(seed)
    return nn.Conv2d(in_channels, **{**SEED_001, **conv_options})


def checkpoint_conv(layer: ConvLayer, *, bias: bool = True, **conv_options: Any) -> nn.Conv2d:
    """A ``Conv2d`` holding the weights of a checkpoint's layer (``groups`` and the geometry
    options - stride, padding, dilation, padding_mode - come from ``conv_options``)."""
    if layer.weight.ndim != 4:
        raise ValueError(
            f"layer {layer.name!r} has a {layer.weight.ndim - 2}-d kernel of shape "
            f"{layer.weight.shape}; images need a Conv2d weight (out, in, kh, kw)"
        )
    out_channels, per_group, *kernel_size = layer.weight.shape
    groups = conv_options.pop("groups", 1)
    conv_options.pop("out_channels", None)
    conv_options.pop("kernel_size", None)
    use_bias = bias and layer.bias is not None
    conv = nn.Conv2d(
        per_group * groups,
        out_channels,
        tuple(kernel_size),
        groups=groups,
        bias=use_bias,
        **conv_options,
    )
    state = {"weight": layer.weight, **({"bias": layer.bias} if use_bias else {})}
    conv.load_state_dict(state)
    return conv


def output_size(conv: nn.Conv2d, height: int, width: int) -> tuple[int, int]:
    """The ``(H', W')`` of ``conv``'s output for an ``H x W`` image, or PyTorch's
    ``RuntimeError`` when the image is too small for the kernel.

    >>> output_size(nn.Conv2d(3, 4, 3, stride=2), 600, 512)
    (299, 255)
    """
    h, w = geometry.conv_output_shape(
        (height, width), conv.kernel_size, conv.stride, conv.padding, conv.dilation
    )
    return h, w


def luminance(images: np.ndarray) -> np.ndarray:
    """The brightness ``0.299 R + 0.587 G + 0.114 B`` of ``(..., 3, H, W)`` images as
    ``(..., 1, H, W)``."""
    weights = np.asarray(LUMA, dtype=np.float32)[:, None, None]
    return (np.asarray(images, dtype=np.float32) * weights).sum(axis=-3, keepdims=True)


def activate(
    maps: np.ndarray,
    activation: str = "sigmoid",
    limits: tuple[Any, Any] | None = None,
) -> np.ndarray:
    """Apply ``"sigmoid"``, ``"none"`` or ``"minmax"`` (each map of ``(..., H, W)`` scaled to
    [0, 1] on its own; a constant map becomes 0) to raw feature maps.  ``limits``: the
    ``(low, span)`` ``minmax`` uses (float32, broadcasting against ``maps``) when ``maps`` is
    a part of the maps, e.g. a band of rows; by default each map's own minimum and range.

    >>> activate(np.array([[[-1.0, 0.0, 3.0]]]), "minmax").tolist()
    [[[0.0, 0.25, 1.0]]]
    >>> activate(np.array([[0.0, 3.0]]), "minmax", (np.float32(-1), np.float32(4))).tolist()
    [[0.25, 1.0]]
    """
    maps = np.asarray(maps, dtype=np.float32)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-maps.astype(np.float64)))).astype(np.float32)
    if activation == "none":
        return maps
    if activation == "minmax":
        if limits is None:
            low = maps.min(axis=(-2, -1), keepdims=True)
            span = maps.max(axis=(-2, -1), keepdims=True) - low
        else:
            low, span = limits
        return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)
    raise ValueError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")


def prepare(images: np.ndarray, conv: nn.Conv2d) -> np.ndarray:
    """``(N, 3, H, W)`` images in the channels ``conv`` expects: as they are for 3, their
    luminance for 1; anything else is a ``ValueError``."""
    if conv.in_channels == images.shape[1]:
        return images
    if conv.in_channels == 1:
        return luminance(images)
    raise ValueError(
        f"the layer expects {conv.in_channels} input channels; an image has 3 (RGB) "
        "or 1 (its luminance)"
    )


def feature_maps(
    images: np.ndarray | Sequence[np.ndarray],
    conv: nn.Conv2d | None = None,
    *,
    activation: str = "sigmoid",
    seed: int = 0,
) -> np.ndarray:
    """The feature maps of ``conv`` (default: :func:`random_conv` of ``seed``) on ``(3, H, W)``
    images or an ``(N, 3, H, W)`` batch, after ``activation``: ``(C, H', W')`` or
    ``(N, C, H', W')`` float32."""
    batch = np.asarray(images, dtype=np.float32)
    single = batch.ndim == 3
    if single:
        batch = batch[None]
    if batch.ndim != 4:
        raise ValueError(f"images are (3, H, W) or (N, 3, H, W), got shape {batch.shape}")
    conv = random_conv(seed) if conv is None else conv
    with no_grad():
        raw = conv(from_numpy(np.ascontiguousarray(prepare(batch, conv)))).numpy()
    maps = activate(raw, activation)
    return maps[0] if single else maps


def model_feature_maps(model: Any, layer: str, batch: np.ndarray) -> np.ndarray:
    """The output of ``model``'s sub-module ``layer`` (a ``named_modules`` name) for the
    ``(N, C, H, W)`` ``batch``, caught by a forward hook during an eval-mode forward pass under
    ``no_grad`` (copied, so a later in-place activation cannot change it).

    >>> from convscope import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    >>> model_feature_maps(net, "0", np.zeros((1, 3, 8, 8), np.float32)).shape
    (1, 4, 6, 6)
    """
    caught: dict[str, np.ndarray] = {}

    def hook(module: Any, args: Any, output: Any) -> None:
        if not hasattr(output, "numpy"):
            raise ValueError(f"layer {layer!r} returns a {type(output).__name__}, not a tensor")
        caught["maps"] = np.array(output.numpy(), copy=True)

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with no_grad():
            model.eval()(from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    finally:
        handle.remove()
    if "maps" not in caught:
        raise ValueError(f"layer {layer!r} is not used by the forward pass")
    return caught["maps"]
