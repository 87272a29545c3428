"""Functional forms of every layer, with PyTorch's names and signatures.

One module per family: ``conv`` (convolutions and ``pad``), ``activation``, ``normalization``,
``pooling``, ``resampling`` and ``loss``.

Each function validates its arguments with PyTorch's exception classes (``RuntimeError`` for
shapes and values, ``TypeError`` for wrong types), then calls the one N-d primitive
:func:`convscope.ops.conv.conv_general`.  Inputs may be ``Tensor`` or NumPy arrays.

>>> import convscope as cs
>>> import convscope.nn.functional as F
>>> x = cs.tensor([[[1, 2, 0, 3, 1]]])
>>> F.conv1d(x, cs.tensor([[[1, 0, -1]]]), padding="same").tolist()
[[[-2, 1, -1, -1, 3]]]
"""

from ..shuffle import channel_shuffle, pixel_shuffle, pixel_unshuffle
from .activation import (
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    elu,
    flatten,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    linear,
    log_softmax,
    mish,
    prelu,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from .adaptive_max import adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, pad
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .normalization import (
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    local_response_norm,
)
from .pooling import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)
from .resampling import interpolate, upsample, upsample_bilinear, upsample_nearest

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "channel_shuffle",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "cross_entropy",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "elu",
    "flatten",
    "gelu",
    "group_norm",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "instance_norm",
    "interpolate",
    "layer_norm",
    "leaky_relu",
    "linear",
    "local_response_norm",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "mish",
    "mse_loss",
    "nll_loss",
    "pad",
    "pixel_shuffle",
    "pixel_unshuffle",
    "prelu",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
]
