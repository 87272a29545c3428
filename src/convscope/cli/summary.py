"""``convscope summary``: a torchinfo-style table of a model's layers, counts and memory.

The model comes from a Python file that sets ``model`` (and optionally ``input_size``), or
from a checkpoint written by ``convscope train`` (its metadata rebuilds the network).
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path
from typing import Any

from .common import UsageError
from .conv_options import parse_int_tuple

EXAMPLES = """examples:
  convscope summary my_model.py --input-size 1,3,32,32
  convscope summary convscope-output/train/model.cs --show-kernel
  convscope summary my_model.py --input-size 8,1,28,28 --depth 1 --json

my_model.py:
  import convscope.nn as nn
  model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
  input_size = (1, 3, 32, 32)   # optional: the default for --input-size
"""

TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="a torchinfo-style summary: layers, output shapes, params, mult-adds, memory",
        description="Run a model once on zeros and print each layer (with its depth) with its "
        "output shape, parameter count and mult-adds, then the totals and memory estimates, "
        "as torchinfo does.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", help="a Python file that sets `model`, or a checkpoint from `convscope train`"
    )
    parser.add_argument("--input-size", help="input shape with the batch first, e.g. 1,3,32,32")
    parser.add_argument("--depth", type=int, default=3, help="nesting depth shown (3)")
    parser.add_argument("--show-kernel", action="store_true", help="add a Kernel Shape column")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def _from_python(path: Path) -> tuple[Any, Any]:
    from ..nn import Module

    try:
        namespace = runpy.run_path(str(path), run_name="__convscope_summary__")
    except Exception as error:  # the user's code: report it in one line, whatever it raised
        raise UsageError(f"{path} failed: {type(error).__name__}: {error}") from None
    if "model" not in namespace:
        raise UsageError(f"{path} does not set `model` (e.g. model = nn.Sequential(...))")
    model = namespace["model"]
    if not isinstance(model, Module) and callable(model):
        model = model()
    if not isinstance(model, Module):
        raise UsageError(f"`model` in {path} is a {type(model).__name__}, not a convscope Module")
    return model, namespace.get("input_size")


def _from_checkpoint(path: Path) -> tuple[Any, Any]:
    from .. import io

    if path.suffix in TORCH_SUFFIXES:
        content = io.load_torch(path)
    elif path.suffix == ".safetensors":
        content = io.load_safetensors(path)
    else:
        content = io.load(path)
    meta = content.get("meta") if isinstance(content, dict) else None
    keys = ("in_channels", "num_classes", "image_size")
    if not isinstance(meta, dict) or not all(k in meta for k in keys):
        raise UsageError(
            f"{path} holds weights but not the network that uses them; write the model in a "
            "Python file that sets `model = ...` and summarise that file"
        )
    from ..apps.train import build_model

    model = build_model(meta["in_channels"], meta["num_classes"], meta["image_size"])
    model.load_state_dict(content["state_dict"])
    size = meta["image_size"]
    return model, (1, meta["in_channels"], size, size)


def load_model(source: str) -> tuple[Any, Any]:
    """The model a source names and the input size it suggests (or ``None``)."""
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    return _from_python(path) if path.suffix == ".py" else _from_checkpoint(path)


def run(args: argparse.Namespace) -> int:
    from ..explain.summary import summary

    model, suggested = load_model(args.source)
    if args.input_size:
        size = parse_int_tuple(args.input_size, "input-size")
        size = (size,) if isinstance(size, int) else size
    elif suggested is not None:
        size = tuple(suggested)
    else:
        raise UsageError("--input-size is needed (the batch first, e.g. 1,3,32,32)")
    if args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    result = summary(model, size, depth=args.depth, show_kernel_size=args.show_kernel)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result)
    return 0
