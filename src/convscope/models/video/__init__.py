"""Video classification networks (torchvision's ``models.video``): 3-D ResNets on
``(N, C, T, H, W)`` clips.

>>> from convscope import models
>>> models.list_models(module=models.video)
['mc3_18', 'r2plus1d_18', 'r3d_18']
"""

from .resnet import VideoResNet, mc3_18, r2plus1d_18, r3d_18

__all__ = ["VideoResNet", "mc3_18", "r2plus1d_18", "r3d_18"]
