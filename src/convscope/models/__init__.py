"""torchvision's CNN architectures built from convscope layers, with torchvision's builder
names and arguments, module names (so ``state_dict`` keys are the same), default
initialisation and train/eval behaviour.

convscope downloads nothing: every builder takes ``weights=None`` only.  To use trained
weights, save a torchvision model's ``state_dict()`` with ``torch.save`` and load it:

    m = cs.models.resnet18(); m.load_state_dict(cs.load_torch("resnet18.pth"))

>>> import convscope as cs
>>> model = cs.models.get_model("resnet18", num_classes=10).eval()
>>> with cs.no_grad():
...     model(cs.rand(2, 3, 64, 64)).shape
(2, 10)
>>> list_models(include="mobilenet*")
['mobilenet_v2', 'mobilenet_v3_large', 'mobilenet_v3_small']
"""

from . import video
from ._blocks import (
    Conv2dNormActivation,
    Conv3dNormActivation,
    Permute,
    SqueezeExcitation,
    StochasticDepth,
    stochastic_depth,
)
from ._registry import get_model, get_model_builder, list_models, register_model
from .convnext import (
    ConvNeXt,
    convnext_base,
    convnext_large,
    convnext_small,
    convnext_tiny,
)
from .efficientnet import (
    EfficientNet,
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    efficientnet_b4,
    efficientnet_b5,
    efficientnet_b6,
    efficientnet_b7,
    efficientnet_v2_l,
    efficientnet_v2_m,
    efficientnet_v2_s,
)
from .mobilenetv2 import MobileNetV2, mobilenet_v2
from .mobilenetv3 import MobileNetV3, mobilenet_v3_large, mobilenet_v3_small
from .resnet import (
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    resnext101_32x8d,
    resnext101_64x4d,
    wide_resnet50_2,
    wide_resnet101_2,
)
from .vgg import (
    VGG,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)

__all__ = [
    "VGG",
    "Conv2dNormActivation",
    "Conv3dNormActivation",
    "ConvNeXt",
    "EfficientNet",
    "MobileNetV2",
    "MobileNetV3",
    "Permute",
    "ResNet",
    "SqueezeExcitation",
    "StochasticDepth",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
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
    "get_model",
    "get_model_builder",
    "list_models",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "stochastic_depth",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "video",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
