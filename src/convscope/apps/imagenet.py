"""ImageNet inputs: torchvision's classic evaluation transform and the 1000 class names.

The transform is ``Resize(256)`` (shorter side to 256, Pillow bilinear with its antialiasing, as
``transforms.Resize`` does on PIL images), ``CenterCrop(224)``, ``ToTensor()`` (values in
[0, 1]) and ``Normalize`` with ImageNet's mean and standard deviation.  Files are opened like
torchvision's ``ImageFolder`` opens them (``convert("RGB")``, no EXIF rotation).

>>> from convscope import samples
>>> batch = preprocess([samples.path("photo.jpg")])
>>> batch.shape, batch.dtype
((1, 3, 224, 224), dtype('float32'))
>>> round(float(unnormalise(batch).min()), 3) >= 0.0
True
>>> len(imagenet_classes()), imagenet_classes()[0]
(1000, 'tench')
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io.image import MAX_PIXELS

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE, CROP = 256, 224


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in class-index order (the bundled list, made from
    torchvision's by ``tools/make_imagenet_classes.py``)."""
    from .. import samples

    return tuple(samples.path("imagenet_classes.txt").read_text(encoding="utf-8").splitlines())


def resized_size(width: int, height: int, size: int = RESIZE) -> tuple[int, int]:
    """``(width, height)`` after scaling the shorter side to ``size`` (the longer one rounded
    down, as torchvision does).

    >>> resized_size(640, 480), resized_size(240, 333)
    ((341, 256), (256, 355))
    """
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


def load_image(
    path: str | os.PathLike,
    *,
    resize: int = RESIZE,
    crop: int = CROP,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray:
    """The image at ``path`` as a normalised float32 ``(3, crop, crop)`` array (see the module
    text); ``ValueError`` or ``OSError`` with a one-line message for a bad file."""
    from PIL import Image

    from ..io.image import _opened

    path = Path(path)
    with _opened(path, max_pixels) as image:
        size = resized_size(*image.size, size=resize)
        if max_pixels is not None and size[0] * size[1] > max_pixels:
            raise ValueError(
                f"{path}: {image.size[0]}x{image.size[1]} is too elongated: resized to "
                f"{size[0]}x{size[1]} it would exceed {max_pixels:,} pixels"
            )
        rgb = image.convert("RGB")  # decoding errors become one-line ValueErrors here
    if rgb.size != size:
        rgb = rgb.resize(size, Image.BILINEAR)
    width, height = size
    top, left = round((height - crop) / 2.0), round((width - crop) / 2.0)
    pixels = np.asarray(rgb, dtype=np.float32)[top : top + crop, left : left + crop] / 255
    return np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1))


def preprocess(
    paths: Sequence[str | os.PathLike], *, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """The images of ``paths`` as one ``(N, 3, 224, 224)`` float32 batch."""
    return np.stack([load_image(p, max_pixels=max_pixels) for p in paths])


def unnormalise(batch: np.ndarray) -> np.ndarray:
    """Preprocessed ``(..., 3, H, W)`` values back in [0, 1] (clipped), for showing them."""
    values = np.asarray(batch) * STD[:, None, None] + MEAN[:, None, None]
    return np.clip(values, 0.0, 1.0).astype(np.float32)
