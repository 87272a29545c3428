"""Classify images with a ``convscope.models`` network and PyTorch weights, no PyTorch needed.

:func:`load_model` builds a network by its torchvision name and loads a state dict file into it
(strictly: every key, every shape); :func:`find_layer` picks one of its sub-modules by name;
:func:`classify` runs the ImageNet-preprocessed images through it (see
:mod:`convscope.apps.imagenet`) and returns the top-k classes.

>>> import numpy as np
>>> [p.label for p in top_k(np.array([[0.0, 2.0, 1.0]]), 2, ["a", "b", "c"])[0]]
['b', 'c']
>>> net = load_model("resnet18", num_classes=4).model
>>> find_layer(net, "layer1.0.conv", "resnet18")
Traceback (most recent call last):
...
ValueError: resnet18 has no layer 'layer1.0.conv'; did you mean layer1.0.conv1, layer1.0.conv2?
"""

from __future__ import annotations

import difflib
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..io.image import MAX_PIXELS
from ..nn.init import skipped as skipped_init
from .imagenet import imagenet_classes, preprocess

#: keys under which training scripts often nest the state dict of a checkpoint
_NESTED = ("state_dict", "model_state_dict", "model")
_SHOWN = 3  # keys named per kind in a "does not fit" message


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _kind(path: Path) -> str:
    """``"safetensors"``, ``"convscope"`` or ``"torch"``, by file name ending, then content."""
    if path.suffix.lower() == ".safetensors":
        return "safetensors"
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1:
        return "safetensors"  # an 8-byte header length, then the JSON header
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "checkpoint.json" in archive.namelist():
                return "convscope"
    return "torch"


def read_weights(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict in ``path``: a ``torch.save`` file, a ``convscope.save`` file or a
    ``.safetensors`` file (told apart by name ending and content), read without running code
    from it.  A dict nested under ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` is
    taken out, and a ``"module."`` prefix on every key (``DataParallel``) is dropped."""
    from .. import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    kind = _kind(path)
    if kind == "safetensors":
        state: Any = io.load_safetensors(path)
    elif kind == "convscope":
        state = io.load(path)
    else:
        state = io.load_torch(path)
    if isinstance(state, Mapping) and not any(_is_array(v) for v in state.values()):
        nested = [state[k] for k in _NESTED if isinstance(state.get(k), Mapping)]
        state = nested[0] if nested else state
    if not isinstance(state, Mapping) or not any(_is_array(v) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, Mapping) else "dict without arrays"
        raise ValueError(f"{path} holds a {what}, not a state dict")
    state = dict(state)
    if all(str(k).startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def num_classes_of(state: Mapping[str, Any]) -> int | None:
    """The output count of a classifier's state dict: the rows of its last 2-D weight
    (``fc.weight``, ``classifier.6.weight``, ...), or ``None`` when it has none."""
    last = None
    for key, value in state.items():
        if str(key).endswith("weight") and len(getattr(value, "shape", ())) == 2:
            last = value
    return None if last is None else int(last.shape[0])


def _names(keys: Sequence[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def fit_problems(model: Any, state: Mapping[str, Any]) -> str:
    """Why ``state`` cannot be loaded strictly into ``model`` (first few missing and unexpected
    keys, or the first shape mismatch), or ``""`` when it fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [str(k) for k in state if k not in own]
    problems = []
    if missing:
        problems.append(f"missing keys {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_names(unexpected)}")
    if not problems:
        for key, value in own.items():
            theirs = tuple(getattr(state[key], "shape", np.shape(state[key])))
            if theirs != tuple(value.shape):
                problems.append(
                    f"{key} has shape {theirs} in the file but {tuple(value.shape)} in the model"
                )
                break
    return "; ".join(problems)


class Network(NamedTuple):
    """A network in eval mode, its output count, whether its weights are random, and the
    inputs it takes: ``"imagenet"`` (RGB, :mod:`convscope.apps.imagenet`) or ``"fashion"``
    (28x28 grayscale, :mod:`convscope.apps.fashion`)."""

    model: Any
    num_classes: int
    random: bool
    inputs: str = "imagenet"


#: the network that ships with convscope (``--model fashion``): TinyVGG on Fashion-MNIST
FASHION = "fashion"


def prepare_inputs(
    network: Network, paths: Sequence[str | os.PathLike], max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """The image files ``paths`` as the float32 batch ``network`` takes (ImageNet crops, or
    28x28 grayscale for the Fashion-MNIST network)."""
    if network.inputs == FASHION:
        from .fashion import load_images

        return load_images(paths, max_pixels=max_pixels)
    return preprocess(paths, max_pixels=max_pixels)


def shown_inputs(network: Network, batch: np.ndarray) -> np.ndarray:
    """A batch from :func:`prepare_inputs` as pictures with values in [0, 1]."""
    if network.inputs == FASHION:
        return batch
    from .imagenet import unnormalise

    return unnormalise(batch)


def input_description(network: Network) -> str:
    """What the network sees of an image, for titles (``"224x224 ImageNet crop"``)."""
    return "28x28 grayscale" if network.inputs == FASHION else "224x224 ImageNet crop"


def class_labels(network: Network) -> Sequence[str] | None:
    """The class names of the network's outputs (``None`` when unknown)."""
    if network.inputs == FASHION:
        from .fashion import FASHION_CLASSES

        return FASHION_CLASSES
    return imagenet_classes() if network.num_classes == 1000 else None


def _load_fashion(weights: str | os.PathLike | None) -> Network:
    """The bundled trained network, or its architecture with the state dict of ``weights``."""
    from .fashion import fashion_tinyvgg, load_fashion_model

    if weights is None:
        return Network(load_fashion_model(), 10, False, FASHION)
    model, state = fashion_tinyvgg(), read_weights(weights)
    problems = fit_problems(model, state)
    if problems:
        raise ValueError(f"weights {weights} do not fit {FASHION}: {problems}")
    model.load_state_dict(state, strict=True)
    return Network(model.eval(), 10, False, FASHION)


def image_models() -> list[str]:
    """The names of ``convscope.models``' image classifiers (the video ones left out)."""
    from .. import models

    return models.list_models(exclude=models.list_models(module=models.video))


def load_model(
    name: str,
    weights: str | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    video: bool = False,
) -> Network:
    """``convscope.models.get_model(name)`` with the state dict of ``weights`` loaded strictly
    (random initial weights when it is ``None``); the class count comes from the file's last
    layer.  ``"fashion"`` is the TinyVGG that ships trained on Fashion-MNIST
    (:mod:`convscope.apps.fashion`; ``weights`` optional).  Bad names and files that do not
    fit are ``ValueError``s with a one-line message."""
    from .. import models

    if name == FASHION:
        return _load_fashion(weights)
    known = models.list_models() if video else image_models()
    if name not in known:
        if name in models.list_models():
            raise ValueError(f"{name} is a video model; this needs an image classifier")
        close = difflib.get_close_matches(name, [FASHION, *known], n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"choose from {FASHION}, {', '.join(known)}"
        )
        raise ValueError(f"unknown model {name!r}; {hint}")
    state = None
    if weights is not None:
        state = read_weights(weights)
        num_classes = num_classes_of(state) or num_classes
    config = {} if num_classes in (None, 1000) else {"num_classes": num_classes}
    if state is None:
        model = models.get_model(name, **config)
    else:  # no random weights to overwrite: the file's arrays become the parameters
        with skipped_init():
            model = models.get_model(name, **config)
        problems = fit_problems(model, state)
        if problems:
            raise ValueError(f"weights {weights} do not fit {name}: {problems}")
        own = model.state_dict(keep_vars=True)
        for key, value in state.items():  # the model's dtypes (assign keeps the file's)
            array = getattr(value, "data", value)
            if key in own and getattr(array, "dtype", None) != own[key].dtype:
                state[key] = np.asarray(array).astype(own[key].dtype)
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as error:
            reason = str(error).split("\n\t")[-1].strip()
            raise ValueError(f"weights {weights} do not fit {name}: {reason}") from None
    return Network(model.eval(), num_classes or 1000, state is None)


def layer_names(model: Any, kind: type | tuple[type, ...] | None = None) -> list[str]:
    """The names of ``model``'s sub-modules (of type ``kind`` when given), in order."""
    return [n for n, m in model.named_modules() if n and (kind is None or isinstance(m, kind))]


def find_layer(
    model: Any,
    layer: str,
    model_name: str,
    kind: type | tuple[type, ...] | None = None,
    what: str = "layer",
) -> Any:
    """``model``'s sub-module called ``layer`` (a ``named_modules`` name); a ``ValueError``
    naming a few valid ones (the closest first) when there is none, or when it is not a
    ``kind`` (called ``what`` in the message)."""
    modules = dict(model.named_modules())
    valid = layer_names(model, kind)
    module = modules.get(layer) if layer else None
    if module is None:
        close = [n for n in valid if layer and n.startswith(layer)][:4]
        close = close or difflib.get_close_matches(layer, valid, n=4, cutoff=0.75)
        kinds = "layers" if kind is None else f"{what} layers"
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"{kinds} include {', '.join(valid[:5])}, ... (see named_modules())"
        )
        raise ValueError(f"{model_name} has no layer {layer!r}; {hint}")
    if kind is not None and not isinstance(module, kind):
        raise ValueError(
            f"layer {layer!r} of {model_name} is a {type(module).__name__}, not a {what}; "
            f"{what} layers: {', '.join(valid[:5])}, ..."
        )
    return module


class Prediction(NamedTuple):
    index: int
    label: str
    probability: float


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(axis=1, keepdims=True)


def top_k(
    logits: np.ndarray, k: int, labels: Sequence[str] | None = None
) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each row of ``logits``, with softmax probabilities
    and ``labels[index]`` (``"class <index>"`` without labels)."""
    probs = softmax(logits)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, probs.shape[1])]
    return [
        [Prediction(int(i), labels[i] if labels else f"class {i}", float(p[i])) for i in row]
        for row, p in zip(order, probs, strict=True)
    ]


def classify(
    network: Network,
    paths: Sequence[str | os.PathLike],
    k: int = 5,
    *,
    batch_size: int = 8,
    max_pixels: int | None = MAX_PIXELS,
    done: Callable[[int], Any] | None = None,
) -> Iterable[tuple[Path, list[Prediction]]]:
    """The top-``k`` classes of every image of ``paths`` (ImageNet names for a 1000-class
    network, Fashion-MNIST's for ``fashion``), ``batch_size`` images per forward pass;
    ``done(n)`` after each batch."""
    import convscope as cs

    labels = class_labels(network)
    for start in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[start : start + batch_size]]
        batch = prepare_inputs(network, chunk, max_pixels)
        with cs.no_grad():
            logits = network.model(cs.from_numpy(batch)).numpy()
        yield from zip(chunk, top_k(logits, k, labels), strict=True)
        if done is not None:
            done(len(chunk))
