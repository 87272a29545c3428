"""``convscope kernels``: draw every filter of a conv layer as a grid (tutorial seed 002).

One row per output channel, one column per input channel, one symmetric colour scale shared by
all cells, with a colour bar.  Without a checkpoint: a freshly initialised layer (PyTorch's
default initialisation, seeded) and the classic filters.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..apps.filters import FILTERS, kernel, parse_filters
from ..apps.kernels import ConvLayer, conv_layers, load_checkpoint, select_layer
from ..random import manual_seed
from ..viz.kernels import MAX_CHANNELS
from .common import UsageError, output_dir, write_atomically
from .conv_options import parse_int_tuple

EXAMPLES = """examples:
  convscope kernels                           # a fresh Conv2d(3, 4, 3) and the classic filters
  convscope kernels --in-channels 1 --out-channels 16 --kernel-size 5 --seed 3
  convscope kernels convscope-output/train/model.cs   # every conv layer of a trained model
  convscope kernels model.pt --layer features.0       # one layer of a PyTorch state dict
  convscope kernels --model resnet18 --weights resnet18.pth --layer conv1   # colour filters
  convscope kernels --model fashion --layer conv1_1   # learned filters of the bundled network

outputs (in --output): kernels_<layer>.png per conv layer of a checkpoint, or
kernels_random.png and kernels_classic.png.  Rows are output channels, columns input channels
(weight[row, column]); red is positive, blue negative, white 0, on one scale for all cells.
--model: kernels_<model>.<layer>.png; a first layer seeing RGB images is drawn as colour filters
(each filter one small RGB image, scaled on its own to the full 0..255 range).
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="draw the filters of a conv layer as a grid",
        description="Draw every kernel of a convolution layer: one row per output channel, one "
        "column per input channel, on a shared symmetric colour scale with a colour bar.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        metavar="CHECKPOINT",
        help="convscope (cs.save), PyTorch (torch.save) or safetensors file",
    )
    parser.add_argument("--layer", help="conv layer to draw (default: every conv layer)")
    parser.add_argument(
        "--model",
        help="a convscope.models architecture (e.g. resnet18): draw its conv --layer (a "
        "named_modules() name, e.g. conv1), with the state dict of --weights; fashion: the "
        "bundled TinyVGG trained on Fashion-MNIST (no --weights needed)",
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="state dict for --model (torch.save(model.state_dict()), convscope.save, "
        ".safetensors; or give it as CHECKPOINT); without it the weights are random",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="convscope-output/kernels",
        help="output folder (convscope-output/kernels)",
    )
    fresh = parser.add_argument_group("fresh layer (no checkpoint), named like Conv2d's arguments")
    fresh.add_argument("--in-channels", type=int, default=3, help="input channels (3)")
    fresh.add_argument("--out-channels", type=int, default=4, help="output channels (4)")
    fresh.add_argument("--kernel-size", default="3", help="e.g. 3 or 3,5 (3)")
    fresh.add_argument("--groups", type=int, default=1, help="channel groups (1)")
    fresh.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    fresh.add_argument(
        "--filters", default="all", help="classic filters to draw, e.g. sobel-x,laplacian (all)"
    )
    parser.add_argument(
        "--max-channels",
        type=int,
        help=f"draw at most this many rows and columns ({MAX_CHANNELS}); for colour filters "
        "(--model, first layer) at most this many filters (all)",
    )


def _file_name(layer_name: str) -> str:
    return "kernels_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", layer_name) or "weight") + ".png"


def _describe(weight: np.ndarray) -> str:
    return (
        f"weight {tuple(weight.shape)}, values {weight.min():+.3g} .. {weight.max():+.3g}, "
        f"mean |w| {np.abs(weight).mean():.3g}"
    )


def _save(figure: Any, path: Path) -> None:
    from ..viz import save_figure

    write_atomically(path, lambda tmp: save_figure(figure, tmp))


def draw_layer(layer: ConvLayer, out: Path, source: str, max_channels: int) -> Path:
    """Write the kernel grid of ``layer`` into ``out`` and return the file."""
    from ..viz import kernel_grid

    name = layer.name or "weight"
    figure = kernel_grid(
        layer.weight,
        title=f"{source}: layer {name!r}, weight {tuple(layer.weight.shape)}",
        max_channels=max_channels,
    )
    path = out / _file_name(layer.name)
    _save(figure, path)
    return path


def draw_fresh(conv: nn.Conv2d, seed: int, out: Path, max_channels: int) -> Path:
    """The kernel grid of a freshly initialised layer."""
    from ..viz import kernel_grid

    figure = kernel_grid(
        conv.weight.numpy(),
        title=f"{conv!r}\nPyTorch's default initialisation "
        f"(uniform \u00b11/sqrt(fan_in)), seed {seed}",
        max_channels=max_channels,
    )
    path = out / "kernels_random.png"
    _save(figure, path)
    return path


def draw_classic(names: list[str], out: Path) -> Path:
    """The classic filters, one panel each with their values."""
    from ..viz import filter_gallery

    figure = filter_gallery(
        {n: kernel(n) for n in names},
        descriptions={n: FILTERS[n][1] for n in names},
        title="classic 3x3 filters (applied as written, like Conv2d: no flip)",
    )
    path = out / "kernels_classic.png"
    _save(figure, path)
    return path


def _fresh_conv(args: argparse.Namespace) -> nn.Conv2d:
    if args.in_channels < 1 or args.out_channels < 1:
        raise UsageError("--in-channels and --out-channels must be positive")
    manual_seed(args.seed)
    return nn.Conv2d(
        args.in_channels,
        args.out_channels,
        parse_int_tuple(args.kernel_size, "kernel-size"),
        groups=args.groups,
    )


def _model_options_conflict(args: argparse.Namespace) -> str | None:
    """The weights file of ``--model`` (``--weights`` or the CHECKPOINT), after refusing the
    options of the other modes."""
    if args.weights is not None and args.checkpoint is not None:
        raise UsageError("give the weights once: --weights FILE or CHECKPOINT, not both")
    changed = [option for option, value in _fresh_options(args).items() if value]
    if changed:
        raise UsageError(f"{', '.join(changed)}: options of a fresh layer, not of --model")
    return args.weights if args.weights is not None else args.checkpoint


def _fresh_options(args: argparse.Namespace) -> dict[str, bool]:
    """Each fresh-layer option -> whether it differs from its default."""
    defaults = {"--in-channels": 3, "--out-channels": 4, "--kernel-size": "3", "--groups": 1}
    defaults.update({"--seed": 0, "--filters": "all"})
    return {
        option: getattr(args, option.lstrip("-").replace("-", "_")) != default
        for option, default in defaults.items()
    }


def _draw_model_layer(args: argparse.Namespace) -> int:
    """``--model``: the filters of one conv layer of a ``convscope.models`` network; a first
    layer seeing RGB as colour filters, any other as the per-channel grid."""
    from ..apps import classify
    from ..nn.conv import _ConvNd
    from ..viz.kernels import colour_filters

    weights = _model_options_conflict(args)
    network = classify.load_model(args.model, weights, video=True)
    if args.layer is None:
        convs = classify.layer_names(network.model, _ConvNd)[:5]
        raise UsageError(f"--model needs --layer; {args.model}'s conv layers: {', '.join(convs)}")
    module = classify.find_layer(network.model, args.layer, args.model, _ConvNd, "convolution")
    if network.random:
        print(
            "convscope kernels: note: no --weights given, so these are random initial filters",
            file=sys.stderr,
        )
    weight = module.weight.numpy()
    name = f"{args.model}.{args.layer}"
    path = Path(args.output) / _file_name(name)
    if weights is not None and path.resolve() == Path(weights).resolve():
        raise UsageError(f"the picture {path} would overwrite the weights file")
    output_dir(args.output)
    rgb = weight.ndim == 4 and module.in_channels == 3 and module.groups == 1
    if rgb and not module.transposed:
        picture = colour_filters(weight, max_filters=args.max_channels)
        write_atomically(path, lambda tmp: _save_rgb(picture, tmp))
        shown = len(weight) if args.max_channels is None else min(len(weight), args.max_channels)
        print(f"{name}: {_describe(weight)} -> {path} ({shown} colour filters)")
        return 0
    from ..viz import kernel_grid

    figure = kernel_grid(
        weight,
        title=f"{args.model}: layer {args.layer!r}, weight {tuple(weight.shape)}",
        max_channels=args.max_channels or MAX_CHANNELS,
    )
    _save(figure, path)
    print(f"{name}: {_describe(weight)} -> {path}")
    return 0


def _save_rgb(picture: np.ndarray, path: str) -> None:
    from PIL import Image

    Image.fromarray(picture).save(path, format="PNG")


def run(args: argparse.Namespace) -> int:
    if args.max_channels is not None and args.max_channels < 1:
        raise UsageError(f"--max-channels must be at least 1, got {args.max_channels}")
    if args.model is not None:
        return _draw_model_layer(args)
    args.max_channels = args.max_channels or MAX_CHANNELS
    if args.weights is not None:
        raise UsageError("--weights goes with --model; a plain checkpoint is the CHECKPOINT")
    if args.checkpoint is None:
        if args.layer is not None:
            raise UsageError("--layer picks a layer of a checkpoint; give the CHECKPOINT too")
        conv = _fresh_conv(args)
        names = parse_filters(args.filters)
        out = output_dir(args.output)
        written = [draw_fresh(conv, args.seed, out, args.max_channels), draw_classic(names, out)]
        print(f"{conv!r}: {_describe(conv.weight.numpy())} -> {written[0]}")
        print(f"classic filters {', '.join(names)} -> {written[1]}")
        return 0
    changed = [option for option, value in _fresh_options(args).items() if value]
    if changed:
        raise UsageError(f"{', '.join(changed)} describe a fresh layer, not a CHECKPOINT's")
    layers = conv_layers(load_checkpoint(args.checkpoint))
    chosen = [select_layer(layers, args.layer)] if args.layer is not None else list(layers.values())
    if not chosen:
        select_layer(layers)  # raises: no conv layers
    out = output_dir(args.output)
    source = Path(args.checkpoint).name
    for layer in chosen:
        path = draw_layer(layer, out, source, args.max_channels)
        print(f"{layer.name or 'weight'}: {_describe(layer.weight)} -> {path}")
    return 0


def demo(folder: Path) -> None:
    """The seed-001 layer's kernels and the classic filters, into ``folder``."""
    out = output_dir(folder)
    manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, 1, 1)
    print(f"{conv!r}, seed 0 -> {draw_fresh(conv, 0, out, MAX_CHANNELS)}")
    print(f"the classic filters -> {draw_classic(list(FILTERS), out)}")
