"""The network that ships with convscope: a TinyVGG trained on Fashion-MNIST by convscope itself.

:func:`fashion_tinyvgg` builds the architecture (two blocks of 3x3 conv-ReLU-conv-ReLU and a 2x2
max pool, then a linear layer to the 10 classes), :func:`load_fashion_model` loads the bundled
trained weights (``samples/fashion/tinyvgg.safetensors``, written by ``tools/train_fashion.py``,
its log in ``tools/train_fashion.log``), :func:`preprocess` turns any image into the network's
input and :func:`fashion_samples` gives the bundled test images (3 per class, from the
Fashion-MNIST test set, which the network never trained on; also as PNG files,
:func:`sample_paths`).

Fashion-MNIST pictures are 28x28 grayscale, a light garment on a black background; an image
that is a dark object on a light background should be inverted first (``invert=True``, or
``invert="auto"``: inverted when its border is mostly light).

>>> import numpy as np
>>> import convscope as cs
>>> model = load_fashion_model()
>>> label, image = fashion_samples()[0]
>>> with cs.no_grad():
...     logits = model(cs.from_numpy(preprocess(image)))
>>> FASHION_CLASSES[int(logits.numpy().argmax())] == FASHION_CLASSES[label]
True
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn

#: the folder of the bundled weights, sample images and class names
FOLDER = Path(__file__).resolve().parent.parent / "samples" / "fashion"
WEIGHTS = FOLDER / "tinyvgg.safetensors"
SAMPLES = FOLDER / "samples.json"
SIZE = 28  # input side in pixels

#: Fashion-MNIST's class names in label order (also in ``samples/fashion/classes.json``)
FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def fashion_tinyvgg(num_classes: int = 10, width: int = 16) -> nn.Sequential:
    """The TinyVGG architecture for ``(N, 1, 28, 28)`` inputs, freshly initialised.

    Layers are named like CNN Explainer's (``conv1_1``, ``relu1_1``, ..., ``pool2``, ``fc``),
    so ``--layer conv2_1`` picks a layer on the command line.

    >>> net = fashion_tinyvgg()
    >>> [name for name, _ in net.named_children()][:5]
    ['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1']
    >>> sum(p.numel() for p in net.parameters())
    32058
    """
    wide = 2 * width
    side = SIZE // 4
    return nn.Sequential(
        OrderedDict(
            conv1_1=nn.Conv2d(1, width, 3, padding=1),
            relu1_1=nn.ReLU(),
            conv1_2=nn.Conv2d(width, width, 3, padding=1),
            relu1_2=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2_1=nn.Conv2d(width, wide, 3, padding=1),
            relu2_1=nn.ReLU(),
            conv2_2=nn.Conv2d(wide, wide, 3, padding=1),
            relu2_2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc=nn.Linear(wide * side * side, num_classes),
        )
    )


def load_fashion_model(weights: str | Path | None = None) -> nn.Sequential:
    """:func:`fashion_tinyvgg` with the bundled trained weights (or the safetensors file
    ``weights``) loaded strictly, in eval mode."""
    from ..io import load_safetensors

    model = fashion_tinyvgg()
    model.load_state_dict(load_safetensors(WEIGHTS if weights is None else weights), strict=True)
    return model.eval()


@functools.cache
def _samples() -> tuple[tuple[int, Path], ...]:
    entries = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return tuple((int(entry["label"]), FOLDER / entry["file"]) for entry in entries)


def sample_paths() -> list[tuple[int, Path]]:
    """The bundled test images as ``(label, PNG file)`` pairs (3 per class, in label order)."""
    return list(_samples())


def fashion_samples() -> list[tuple[int, np.ndarray]]:
    """The bundled test images as ``(label, image)`` pairs, ``image`` a ``(28, 28)`` uint8
    array (3 per class, in label order).

    >>> pairs = fashion_samples()
    >>> len(pairs), pairs[0][1].shape, pairs[0][1].dtype, sorted({label for label, _ in pairs})
    (30, (28, 28), dtype('uint8'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    from PIL import Image

    pairs = []
    for label, path in _samples():
        with Image.open(path) as image:
            pairs.append((label, np.asarray(image.convert("L"), dtype=np.uint8)))
    return pairs


def default_sample() -> Path:
    """The bundled picture the commands use when given no image: the first ankle boot."""
    return next(path for label, path in _samples() if label == FASHION_CLASSES.index("Ankle boot"))


def class_names_file() -> Path:
    """The JSON file holding :data:`FASHION_CLASSES` (for tools outside Python)."""
    return FOLDER / "classes.json"


def _gray(image: Any) -> np.ndarray:
    """A PIL image or an array ``(H, W)``, ``(H, W, 1|3|4)`` or ``(1|3, H, W)`` as float32
    gray values in [0, 1] (integer arrays are read as 0..255, float arrays as 0..1)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if "A" in image.mode or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # garments sit on black
            image = Image.alpha_composite(background, rgba)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    array = np.asarray(image)
    if array.dtype == np.bool_ or array.ndim not in (2, 3):
        raise ValueError(
            f"expected an image (H, W), (H, W, C) or (C, H, W), got shape {array.shape} "
            f"of {array.dtype}"
        )
    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4) and array.shape[0] not in (1, 3):
            array = np.moveaxis(array, -1, 0)
        if array.shape[0] not in (1, 3, 4):
            raise ValueError(f"expected 1, 3 or 4 colour channels, got shape {array.shape}")
        channels = array[:3].astype(np.float64)
        array = (
            channels[0]
            if len(channels) == 1
            else channels[0] * 0.299 + channels[1] * 0.587 + channels[2] * 0.114
        )
    scale = 255.0 if np.issubdtype(np.asarray(image).dtype, np.integer) else 1.0
    return np.clip(np.asarray(array, dtype=np.float32) / scale, 0.0, 1.0)


def preprocess(image: Any, *, invert: bool | str = False) -> np.ndarray:
    """Any image (PIL image, or an array as :func:`_gray` reads it) as the network's input:
    ``(1, 1, 28, 28)`` float32 in [0, 1] - gray, resized to 28x28 (Pillow bilinear with
    antialiasing) when it has another size, ``1 - value`` with ``invert=True`` (for dark objects
    on a light background; ``"auto"``: when the mean of the border pixels is above 0.5).
    Training used exactly this scaling (pixel / 255) and nothing else.

    >>> x = preprocess(np.full((56, 40, 3), 255, dtype=np.uint8), invert=True)
    >>> x.shape, x.dtype, float(x.max())
    ((1, 1, 28, 28), dtype('float32'), 0.0)
    """
    from PIL import Image

    gray = _gray(image)
    if gray.shape != (SIZE, SIZE):
        resized = Image.fromarray(gray).resize((SIZE, SIZE), Image.BILINEAR)
        gray = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    if invert == "auto":
        invert = needs_inversion(gray)
    if invert:
        gray = 1.0 - gray
    return np.ascontiguousarray(gray, dtype=np.float32).reshape(1, 1, SIZE, SIZE)


def needs_inversion(gray: np.ndarray) -> bool:
    """Whether a gray ``(H, W)`` picture in [0, 1] looks like a dark object on a light
    background (the mean of its one-pixel border is above 0.5) rather than Fashion-MNIST's
    light garment on black.

    >>> needs_inversion(np.ones((5, 5))), needs_inversion(np.pad(np.ones((3, 3)), 1))
    (True, False)
    """
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return bool(border.mean() > 0.5)


def load_image(
    path: str | Path, *, invert: bool | str = "auto", max_pixels: int | None = None
) -> np.ndarray:
    """The image file at ``path`` preprocessed (see :func:`preprocess`; inverted when its
    border is light, unless ``invert`` says otherwise); ``ValueError`` with a one-line message
    for a bad file."""
    from ..io.image import MAX_PIXELS, _opened

    with _opened(Path(path), MAX_PIXELS if max_pixels is None else max_pixels) as image:
        try:
            image.load()
        except (OSError, SyntaxError) as error:
            raise ValueError(f"{path}: corrupt or truncated image ({error})") from None
        return preprocess(image.copy(), invert=invert)


def load_images(
    paths: Any, *, invert: bool | str = "auto", max_pixels: int | None = None
) -> np.ndarray:
    """Several image files as one ``(N, 1, 28, 28)`` batch (see :func:`load_image`)."""
    return np.concatenate([load_image(p, invert=invert, max_pixels=max_pixels) for p in paths])


def class_names() -> tuple[str, ...]:
    """The class names as stored in ``classes.json`` (equal to :data:`FASHION_CLASSES`)."""
    return tuple(json.loads(class_names_file().read_text(encoding="utf-8")))
