"""The network view's data: a trained network's activations, receptive fields and layers.

A :class:`Network` is a model, its class names, sample images and the function turning an
image into the model's input.  :meth:`Network.run` records every leaf module's input and
output with forward hooks; the receptive field of one cell is traced back through that chain
of layers with each layer's tap map (:func:`convscope.explain.tap_map`), so the highlighted
cells are the ones the engine's windows read.  Uploaded images live in memory only.

>>> from convscope import nn
>>> net = Network("tiny", nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)).eval(),
...               ("a", "b"), [], lambda image: np.zeros((1, 1, 8, 8), np.float32))
>>> run = net.run(np.zeros((1, 1, 8, 8), np.float32))
>>> [(r.name, r.output.shape) for r in run.records]
[('0', (1, 2, 6, 6)), ('1', (1, 2, 6, 6)), ('2', (1, 2, 3, 3))]
>>> field = receptive_field(run, 3, (0, 1, 1))
>>> field[0]["box"], field[1]["box"]
([2, 6, 2, 6], [2, 4, 2, 4])
"""

from __future__ import annotations

import base64
import io
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .options import MAX_TENSOR, ApiError, count

#: uploads larger than this (bytes) get HTTP 413
MAX_UPLOAD = 20 * 1024 * 1024
#: decoded images larger than this (pixels) get HTTP 413
MAX_UPLOAD_PIXELS = 50_000_000
MAX_CHANNELS_SHOWN = 16
MAX_LAYERS_SHOWN = 48
#: largest working grid (cells, padding included) a network layer is drawn with
MAX_PLAYGROUND_CELLS = 128 * 128
_KEPT = 8  # uploads and runs kept in memory


@dataclass(eq=False)  # records are compared by identity (their arrays have no single truth)
class Record:
    """One leaf module's call: its name, the module, its input and output arrays."""

    name: str
    module: Any
    input: np.ndarray | None
    output: np.ndarray


@dataclass
class Run:
    """The input and the recorded layers of one forward pass, and the class probabilities."""

    input: np.ndarray
    records: list[Record]
    probabilities: np.ndarray | None
    maps: dict[int, Any] = field(default_factory=dict)


@dataclass
class Network:
    """A model in eval mode with class names, samples ``(label, image)`` and preprocessing."""

    name: str
    model: Any
    classes: Sequence[str]
    samples: list[tuple[int, Any]]
    prepare: Callable[[Any], np.ndarray]
    note: str = ""
    _runs: OrderedDict = field(default_factory=OrderedDict)
    _uploads: OrderedDict = field(default_factory=OrderedDict)
    _lock: Any = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "note": self.note,
            "classes": list(self.classes),
            "samples": [
                {"id": i, "label": label, "class": self._class(label), "thumb": _thumb(picture)}
                for i, (label, picture) in enumerate(self.samples)
            ],
        }

    def _class(self, label: int | None) -> str | None:
        if label is None or not 0 <= label < len(self.classes):
            return None
        return str(self.classes[label])

    def run(self, x: np.ndarray) -> Run:
        """Run the model on ``x``, recording every leaf module's input and output."""
        from ..autograd import no_grad
        from ..tensor import Tensor

        records: list[Record] = []
        names = {id(m): n for n, m in self.model.named_modules()}

        def hook(module: Any, inputs: Any, output: Any) -> None:
            first = inputs[0] if isinstance(inputs, tuple) and inputs else None
            data = getattr(first, "data", None)
            if isinstance(output, Tensor):
                records.append(Record(names.get(id(module), "?"), module, data, output.numpy()))

        leaves = [m for _, m in self.model.named_modules() if not any(True for _ in m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves if m is not self.model]
        try:
            with no_grad():
                out = self.model(Tensor(x)).numpy()
        finally:
            for h in handles:
                h.remove()
        probabilities = None
        if out.ndim == 2 and out.shape[0] == 1:
            shifted = out[0].astype(np.float64) - out[0].max()
            probabilities = np.exp(shifted) / np.exp(shifted).sum()
        return Run(x, records, probabilities)

    # ------------------------------------------------------------------ inputs
    def input_for(self, query: dict[str, list[str]]) -> tuple[str, np.ndarray, int | None]:
        """``(key, model input, label)`` for ``sample=K`` or ``image=ID`` (default sample 0)."""
        sample, image = _one(query, "sample"), _one(query, "image")
        if image is not None:
            with self._lock:
                if image not in self._uploads:
                    raise ApiError(f"no uploaded image {image!r} (uploads are kept in memory)")
                return f"image:{image}", self._uploads[image], None
        if not self.samples:
            raise ApiError(f"{self.name} has no bundled samples: drop an image on the page")
        index = _int(sample or "0", "sample")
        if not 0 <= index < len(self.samples):
            raise ApiError(f"sample {index} out of range 0..{len(self.samples) - 1}")
        label, picture = self.samples[index]
        return f"sample:{index}", self.prepare(picture), label

    def cached_run(self, key: str, x: np.ndarray) -> Run:
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
        with _RUN:  # hooks are registered on shared modules: one forward pass at a time
            result = self.run(x)
        with self._lock:
            self._runs[key] = result
            while len(self._runs) > _KEPT:
                self._runs.popitem(last=False)
        return result

    def add_upload(self, x: np.ndarray) -> str:
        with self._lock:
            key = f"u{next(_counter)}"
            self._uploads[key] = x
            while len(self._uploads) > _KEPT:
                old, _ = self._uploads.popitem(last=False)
                self._runs.pop(f"image:{old}", None)
            return key


_counter = itertools.count(1)
_RUN = threading.Lock()


def _thumb(picture: Any, side: int = 28) -> dict[str, Any]:
    """A gray thumbnail (at most ``side`` pixels a side) of a sample, bytes in base64."""
    from PIL import Image

    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    small = image.convert("L")
    small.thumbnail((side, side))
    return {
        "width": small.width,
        "height": small.height,
        "gray": base64.b64encode(np.asarray(small, dtype=np.uint8).tobytes()).decode("ascii"),
    }


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(f"option {name!r} given {len(values)} times")
    return values[0]


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(f"{name} expects an integer, got {text!r}") from None


def _ints(text: str | None, name: str) -> tuple[int, ...]:
    if text is None:
        raise ApiError(f"{name} is needed, e.g. {name}=0,1,2")
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ApiError(f"{name} expects integers like 0,1,2, got {text!r}") from None


# ----------------------------------------------------------------------------- receptive fields
def _spatial(array: np.ndarray | None) -> tuple[int, ...] | None:
    return None if array is None or array.ndim < 3 else tuple(array.shape[2:])


def _back(record: Record, mask_out: np.ndarray, cache: dict[int, Any]) -> np.ndarray | None:
    """The input cells a layer's output cells ``mask_out`` read (``None``: all of them)."""
    from ..explain import tap_map

    module, in_shape = record.module, _spatial(record.input)
    out_shape = _spatial(record.output)
    if in_shape is None or out_shape is None or len(in_shape) != len(out_shape):
        return None
    kernel = getattr(module, "kernel_size", None)
    if kernel is None:
        return mask_out if in_shape == out_shape else None
    key = (id(module), in_shape)
    if key not in cache:
        stride = getattr(module, "stride", None)
        transposed = bool(getattr(module, "transposed", False))
        try:
            m = tap_map(
                in_shape,
                kernel,
                kernel if stride is None else stride,
                getattr(module, "padding", 0),
                getattr(module, "dilation", 1) or 1,
                padding_mode=getattr(module, "padding_mode", "zeros"),
                transposed=transposed,
                output_padding=getattr(module, "output_padding", 0),
            )
        except (ValueError, RuntimeError, TypeError):
            m = None
        cache[key] = m if m is not None and m.out_shape == out_shape else None
    m = cache[key]
    if m is None:
        return None
    sources = m.sources[mask_out]
    mask_in = np.zeros(in_shape, dtype=bool)
    mask_in.reshape(-1)[sources[sources >= 0]] = True
    return mask_in


def _describe_mask(mask: np.ndarray | None) -> dict[str, Any]:
    if mask is None:
        return {"whole": True, "box": None, "cells": None}
    if mask.ndim != 2:
        return {"whole": False, "box": None, "cells": np.flatnonzero(mask).tolist()}
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return {"whole": False, "box": None, "cells": []}
    box = [int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1]
    return {"whole": False, "box": box, "cells": np.flatnonzero(mask).tolist()}


def receptive_field(run: Run, layer: int, at: Sequence[int]) -> list[dict[str, Any]]:
    """For the cell ``at = (channel, *position)`` of shown layer ``layer`` (0 is the input):
    the receptive field traced through the recorded layers in call order (a skip connection's
    identity path is not traced; the convolution path it bypasses covers it),
    the cells it depends on in every earlier shown layer (``box`` = [row0, row1, col0, col1],
    ends exclusive)."""
    shown = shown_layers(run)
    if not 0 <= layer < len(shown):
        raise ApiError(f"layer {layer} out of range 0..{len(shown) - 1}")
    if layer == 0:
        raise ApiError("layer 0 is the input: choose a later layer")
    target = shown[layer]
    record_index = run.records.index(target)
    out = target.output
    if len(at) != out.ndim - 1:
        raise ApiError(f"at needs {out.ndim - 1} indices (channel, row, column), got {len(at)}")
    for a, (i, size) in enumerate(zip(at, out.shape[1:], strict=True)):
        if not 0 <= i < size:
            raise ApiError(f"index {i} is out of bounds for dimension {a + 1} with size {size}")
    masks: dict[int, np.ndarray | None] = {}  # record index -> mask over its output
    mask: np.ndarray | None = np.zeros(out.shape[2:], dtype=bool)
    mask[tuple(at[1:])] = True
    input_mask: np.ndarray | None = None
    for k in range(record_index, -1, -1):
        masks[k] = mask
        rec = run.records[k]
        mask = None if mask is None else _back(rec, mask, run.maps)
        previous = run.records[k - 1].output if k > 0 else run.input
        if rec.input is None or rec.input.shape != previous.shape:
            mask = None
        if k == 0:
            input_mask = mask
    result = []
    for i, rec in enumerate(shown[: layer + 1]):
        chosen = input_mask if i == 0 else masks.get(run.records.index(rec))
        result.append({"layer": i, **_describe_mask(chosen)})
    return result


def shown_layers(run: Run) -> list[Any]:
    """The columns of the network view: the input (``None``), then layers with a spatial map."""
    layers: list[Any] = [None]
    layers += [r for r in run.records if r.output.ndim == 4 and r.output.shape[0] == 1]
    return layers[:MAX_LAYERS_SHOWN]


def _encode(channels: np.ndarray, low: float, high: float) -> list[str]:
    scale = 255.0 / (high - low) if high > low else 0.0
    data = np.clip(np.round((channels - low) * scale), 0, 255).astype(np.uint8)
    return [base64.b64encode(c.tobytes()).decode("ascii") for c in data]


def _column(index: int, name: str, kind: str, text: str, maps: np.ndarray) -> dict[str, Any]:
    shown = maps[:MAX_CHANNELS_SHOWN].astype(np.float64)
    finite = shown[np.isfinite(shown)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    return {
        "index": index,
        "name": name,
        "kind": kind,
        "repr": text,
        "shape": list(maps.shape),
        "channels_shown": int(shown.shape[0]),
        "min": low,
        "max": high,
        "maps": _encode(np.nan_to_num(shown), low, high),
        "conv": kind.startswith("Conv"),
    }


# ----------------------------------------------------------------------------- the network
_configured: Callable[[], Network] | None = None
_current: Network | None = None
_load_lock = threading.Lock()


def configure(loader: Callable[[], Network] | None) -> None:
    """Use ``loader()`` (called once, lazily) as the network; ``None``: the bundled one."""
    global _configured, _current
    with _load_lock:
        _configured, _current = loader, None


def current() -> Network:
    """The network the view shows (loaded on first use)."""
    global _current
    with _load_lock:
        if _current is None:
            _current = (_configured or fashion_network)()
        return _current


def fashion_network(weights: str | Path | None = None) -> Network:
    """The bundled TinyVGG trained on Fashion-MNIST (or with the safetensors file
    ``weights``), with the bundled test images."""
    from ..apps import fashion

    return Network(
        "fashion (TinyVGG, Fashion-MNIST)",
        fashion.load_fashion_model(weights),
        tuple(fashion.FASHION_CLASSES),
        fashion.fashion_samples(),
        fashion.preprocess,
        "trained by convscope on Fashion-MNIST; dropped images are made gray and 28x28",
    )


def _resized(image: Any, channels: int, size: int) -> np.ndarray:
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    picture = picture.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
    array = np.asarray(picture, dtype=np.float32) / 255.0
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array[None])


def checkpoint_network(path: str | Path) -> Network:
    """A ``convscope train`` checkpoint (its Conv-BN-ReLU-Pool network), samples resized to fit."""
    from .. import io as cs_io
    from ..apps import train

    data = cs_io.load(path)
    if not isinstance(data, dict) or "state_dict" not in data or "meta" not in data:
        raise ValueError(f"{path} is not a convscope train checkpoint (state_dict and meta)")
    meta = data["meta"]
    channels, classes, size = (int(meta[k]) for k in ("in_channels", "num_classes", "image_size"))
    model = train.build_model(channels, classes, size)
    model.load_state_dict(data["state_dict"], strict=True)
    samples: list[tuple[int, Any]] = []
    try:
        from ..apps import fashion

        samples = [(-1, image) for _, image in fashion.fashion_samples()[::3]]
    except (ImportError, OSError):
        pass
    return Network(
        Path(path).name,
        model.eval(),
        tuple(str(i) for i in range(classes)),
        samples,
        lambda image: _resized(image, channels, size),
        f"convscope train checkpoint; samples are Fashion-MNIST pictures resized to {size}x{size}",
    )


def models_network(name: str, weights: str | Path | None) -> Network:
    """A ``convscope.models`` image classifier with PyTorch weights and the bundled photo."""
    from .. import samples
    from ..apps import imagenet
    from ..apps.classify import load_model

    net = load_model(name, weights)
    classes = (
        imagenet.imagenet_classes()
        if net.num_classes == 1000
        else tuple(str(i) for i in range(net.num_classes))
    )

    def prepare(image: Any) -> np.ndarray:
        from PIL import Image

        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        width, height = imagenet.resized_size(*picture.size)
        rgb = picture.convert("RGB").resize((width, height), Image.BILINEAR)
        top, left = round((height - imagenet.CROP) / 2.0), round((width - imagenet.CROP) / 2.0)
        pixels = np.asarray(rgb, dtype=np.float32)[
            top : top + imagenet.CROP, left : left + imagenet.CROP
        ]
        normal = (pixels / 255 - imagenet.MEAN) / imagenet.STD
        return np.ascontiguousarray(normal.transpose(2, 0, 1)[None], dtype=np.float32)

    from PIL import Image

    with Image.open(samples.path("photo.jpg")) as photo:
        picture = photo.convert("RGB")
    note = "random weights" if net.random else f"weights from {Path(str(weights)).name}"
    return Network(name, net.model, classes, [(-1, picture)], prepare, note)


# ----------------------------------------------------------------------------- endpoints
def _run_for(query: dict[str, list[str]]) -> tuple[Network, Run, int | None]:
    net = current()
    key, x, label = net.input_for(query)
    return net, net.cached_run(key, x), label


def _check_keys(query: dict[str, list[str]], allowed: Sequence[str]) -> None:
    for key in query:
        if key not in allowed:
            raise ApiError(f"unknown option {key!r}; options: {', '.join(allowed)}")


def activations_endpoint(query: dict[str, list[str]]) -> dict[str, Any]:
    """Every shown layer's output channels (uint8 maps, base64) and the class probabilities."""
    _check_keys(query, ("sample", "image"))
    net, run, label = _run_for(query)
    columns = []
    for i, rec in enumerate(shown_layers(run)):
        if rec is None:
            columns.append(_column(0, "input", "input", "input", run.input[0]))
        else:
            columns.append(
                _column(i, rec.name, type(rec.module).__name__, repr(rec.module), rec.output[0])
            )
    result: dict[str, Any] = {
        "network": net.name,
        "label": label,
        "label_class": net._class(label),
        "layers": columns,
        "probabilities": None,
    }
    if run.probabilities is not None:
        order = np.argsort(-run.probabilities)
        result["probabilities"] = [
            {
                "class": net._class(int(i)) or str(int(i)),
                "index": int(i),
                "p": float(run.probabilities[i]),
            }
            for i in order[:10]
        ]
        result["prediction"] = net._class(int(order[0])) or str(int(order[0]))
    return result


def field_endpoint(query: dict[str, list[str]]) -> dict[str, Any]:
    """The receptive field of ``at=c,i,j`` in shown layer ``layer``, and the cell's value."""
    _check_keys(query, ("sample", "image", "layer", "at"))
    _, run, _ = _run_for(query)
    index = _int(_one(query, "layer") or "", "layer") if _one(query, "layer") else None
    if index is None:
        raise ApiError("layer is needed (a column number, 1 for the first layer)")
    at = _ints(_one(query, "at"), "at")
    fields = receptive_field(run, index, at)
    rec = shown_layers(run)[index]
    return {
        "layer": index,
        "name": rec.name,
        "at": list(at),
        "value": float(rec.output[(0, *at)]),
        "fields": fields,
    }


def _conv_record(run: Run, query: dict[str, list[str]]) -> tuple[int, Record]:
    from ..explain.shapes import ConvLayer

    text = _one(query, "layer")
    if text is None:
        raise ApiError("layer is needed (a column number of a convolution layer)")
    index = _int(text, "layer")
    shown = shown_layers(run)
    if not 1 <= index < len(shown):
        raise ApiError(f"layer {index} out of range 1..{len(shown) - 1}")
    rec = shown[index]
    if not isinstance(rec.module, ConvLayer):
        raise ApiError(
            f"layer {index} ({rec.name}) is a {type(rec.module).__name__}, "
            "not a convolution: the playground shows convolutions"
        )
    if rec.input is None:
        raise ApiError(f"layer {index} ({rec.name}) has no recorded input")
    return index, rec


def layer_endpoint(query: dict[str, list[str]]) -> dict[str, Any]:
    """A convolution layer of the network with its trained weights and real input."""
    from . import api

    _check_keys(query, ("sample", "image", "layer"))
    _, run, _ = _run_for(query)
    index, rec = _conv_record(run, query)
    spatial = rec.input.shape[2:]
    pads = [
        2 * (k - 1) * d for k, d in zip(rec.module.kernel_size, rec.module.dilation, strict=True)
    ]
    grid = [s + p for s, p in zip(spatial, pads, strict=True)]
    if count(grid) > MAX_PLAYGROUND_CELLS or count(rec.input.shape) > MAX_TENSOR:
        raise ApiError(
            f"layer {index} ({rec.name}) reads a {'x'.join(map(str, spatial))} input with "
            f"{rec.input.shape[1]} channels: too large to draw in the playground (up to "
            f"{MAX_PLAYGROUND_CELLS} grid cells); hover it here instead",
            status=413,
        )
    with api.COMPUTE:
        payload = api.layer_payload(rec.module, rec.input)
    return {**payload, "name": rec.name, "index": index}


def explain_endpoint(query: dict[str, list[str]]) -> dict[str, Any]:
    """``explain.element`` of one output element of a network layer (same JSON as explain)."""
    from ..explain import element

    _check_keys(query, ("sample", "image", "layer", "at", "precision"))
    _, run, _ = _run_for(query)
    _, rec = _conv_record(run, query)
    at = _ints(_one(query, "at"), "at")
    if len(at) == rec.output.ndim - 1:
        at = (0, *at)
    precision = _int(_one(query, "precision") or "4", "precision")
    if not 0 <= precision <= 17:
        raise ApiError("precision must be between 0 and 17")
    try:
        return element(rec.module, rec.input, at, precision=precision).to_dict()
    except IndexError as error:
        raise ApiError(f"at {','.join(map(str, at))}: {error}") from None


def upload(body: bytes) -> dict[str, Any]:
    """Decode an uploaded image (in memory), prepare it for the network, keep it under an id."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    if len(body) > MAX_UPLOAD:
        raise ApiError(f"upload of {len(body)} bytes; the limit is {MAX_UPLOAD}", status=413)
    if not body:
        raise ApiError("empty upload: send the image file as the request body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as image:
                width, height = image.size
                if width * height > MAX_UPLOAD_PIXELS:
                    raise ApiError(
                        f"image of {width}x{height} = {width * height} pixels; the limit is "
                        f"{MAX_UPLOAD_PIXELS}",
                        status=413,
                    )
                image.load()
                picture = image.copy()
    except UnidentifiedImageError:
        raise ApiError("not an image (PNG, JPEG, BMP, GIF, TIFF or WebP expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ApiError(f"image too large: {error}", status=413) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ApiError(f"corrupt or truncated image ({error})") from None
    net = current()
    x = net.prepare(picture)
    check = count(x.shape)
    if check > MAX_UPLOAD_PIXELS:
        raise ApiError("prepared input too large", status=413)
    return {
        "image": net.add_upload(np.asarray(x, dtype=np.float32)),
        "width": width,
        "height": height,
    }
