"""ImageNet classification with a ``convscope.models`` network and PyTorch weights.

Preprocessing is torchvision's classic evaluation transform: the shorter side resized to 256
(Pillow bilinear, as ``transforms.Resize`` does on PIL images), a centre crop of 224, values in
[0, 1], normalised with ImageNet's mean and standard deviation.

>>> import convscope as cs
>>> from convscope import samples
>>> batch = preprocess([samples.path("photo.jpg")])
>>> batch.shape, batch.dtype
((1, 3, 224, 224), dtype('float32'))
>>> len(imagenet_classes()), imagenet_classes()[0]
(1000, 'tench')
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE, CROP = 256, 224


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in class-index order (bundled list)."""
    from .. import samples

    return tuple(samples.path("imagenet_classes.txt").read_text().splitlines())


def load_image(path: str | os.PathLike, resize: int = RESIZE, crop: int = CROP) -> np.ndarray:
    """One image as a normalised float32 ``(3, crop, crop)`` array (see the module text)."""
    from PIL import Image

    from ..io.image import MAX_PIXELS, _opened

    with _opened(Path(path), MAX_PIXELS) as image:
        image = image.convert("RGB")
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(resize * long / short)
        size = (resize, new_long) if width <= height else (new_long, resize)
        image = image.resize(size, Image.BILINEAR)
    width, height = image.size
    top, left = round((height - crop) / 2.0), round((width - crop) / 2.0)
    pixels = np.asarray(image, dtype=np.float32)[top : top + crop, left : left + crop] / 255
    if pixels.shape[:2] != (crop, crop):
        raise ValueError(f"{path}: image smaller than the {crop}x{crop} crop after resizing")
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def preprocess(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """The images of ``paths`` as one ``(N, 3, 224, 224)`` float32 batch."""
    return np.stack([load_image(p) for p in paths]).astype(np.float32, copy=False)


def read_weights(path: str | os.PathLike) -> Mapping[str, Any]:
    """A state dict from a ``torch.save`` file, a ``cs.save`` file or ``.safetensors``
    (by content), read without running code from the file."""
    from .. import io

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if path.suffix == ".safetensors":
        return io.load_safetensors(path)
    if head.startswith(b"PK"):
        try:
            return io.load_torch(path)
        except io.CheckpointError:
            return io.load(path)
    return io.load_torch(path)


def num_classes_of(state: Mapping[str, Any]) -> int | None:
    """The classifier's output count from a state dict's last 2-D weight (``fc``,
    ``classifier.N``, ``head``), or ``None``."""
    last = None
    for key, value in state.items():
        if key.endswith("weight") and np.ndim(getattr(value, "data", value)) == 2:
            last = value
    return None if last is None else int(np.shape(getattr(last, "data", last))[0])


class Prediction(NamedTuple):
    index: int
    label: str
    probability: float


def top_k(logits: np.ndarray, k: int, labels: Sequence[str] | None) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each row of ``logits`` (softmax probabilities)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    k = min(k, logits.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [
            Prediction(int(i), labels[i] if labels else f"class {i}", float(row_probs[i]))
            for i in row
        ]
        for row, row_probs in zip(order, probs, strict=True)
    ]
