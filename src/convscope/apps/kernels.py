"""Convolution kernels out of checkpoints: load a file, list its conv layers, pick one by name.

A checkpoint may be a state dict (``model.state_dict()``), or hold one under ``state_dict``,
``model_state_dict``, ``model`` or ``net`` (as ``convscope train`` writes it), in convscope's
own format (``cs.save``), a PyTorch ``torch.save`` file or a ``.safetensors`` file.  A *conv
layer* is a ``<name>.weight`` with 3 to 5 dimensions (Conv1d/2d/3d); its bias is
``<name>.bias`` when present.

>>> import io
>>> import convscope as cs
>>> model = cs.nn.Sequential(cs.nn.Conv2d(1, 4, 3), cs.nn.ReLU(), cs.nn.Conv2d(4, 2, 5))
>>> buffer = io.BytesIO()
>>> cs.save({"state_dict": model.state_dict(), "epochs": 3}, buffer)
>>> layers = conv_layers(cs.load(buffer))
>>> {name: layer.weight.shape for name, layer in layers.items()}
{'0': (4, 1, 3, 3), '2': (2, 4, 5, 5)}
>>> select_layer(layers, "2").name
'2'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..io import CheckpointError, load, load_safetensors, load_torch
from ..tensor import Tensor

#: keys under which checkpoints commonly keep the model's state dict
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


class ConvLayer(NamedTuple):
    """The weights of one convolution layer found in a checkpoint."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Read a convscope, PyTorch or safetensors checkpoint (never executing anything in it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint")
    if path.suffix.lower() == ".safetensors":
        return load_safetensors(path)
    try:
        return load(path)
    except CheckpointError as own_error:
        try:
            return load_torch(path)
        except CheckpointError:
            raise CheckpointError(
                f"{path}: neither a convscope checkpoint nor a torch.save file "
                f"({str(own_error).removeprefix(f'{path}: ')})"
            ) from None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _state_dict(checkpoint: Any) -> Mapping[str, Any]:
    if not isinstance(checkpoint, Mapping):
        kind = type(checkpoint).__name__
        raise ValueError(f"a checkpoint should be a dict of tensors, got a {kind}")
    for key in STATE_DICT_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            return checkpoint[key]
    return checkpoint


def _array(value: Any) -> np.ndarray | None:
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value
    return None


def conv_layers(checkpoint: Any) -> dict[str, ConvLayer]:
    """Every conv layer of a loaded checkpoint, by name, in file order."""
    flat = _flatten(_state_dict(checkpoint))
    layers: dict[str, ConvLayer] = {}
    for key, value in flat.items():
        weight = _array(value)
        if weight is None or not 3 <= weight.ndim <= 5:
            continue
        if key == "weight":
            name = ""
        elif key.endswith(".weight"):
            name = key[: -len(".weight")]
        else:
            continue
        bias = _array(flat.get(f"{name}.bias" if name else "bias"))
        if bias is not None and bias.shape != (weight.shape[0],):
            bias = None  # a transposed layer's bias has another length: shown without it
        layers[name] = ConvLayer(name, np.asarray(weight, dtype=np.float32), bias)
    return layers


def select_layer(layers: Mapping[str, ConvLayer], name: str | None = None) -> ConvLayer:
    """The layer called ``name`` (the first one when ``None``); a ``ValueError`` lists the
    available names otherwise."""
    if not layers:
        raise ValueError("the checkpoint holds no convolution weights (<name>.weight, 3-5 dims)")
    if name is None:
        return next(iter(layers.values()))
    stripped = name.removesuffix(".weight")  # "0.weight" names the layer "0" too
    if stripped in layers:
        return layers[stripped]
    available = ", ".join(repr(n) for n in layers)
    raise ValueError(f"no conv layer {name!r} in the checkpoint (available: {available})")
