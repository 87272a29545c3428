"""``convscope demo``: the worked examples of the tutorials, computed live and explained.

Each section prints what it computes, the numbers, and a check against an independent
computation (so the demo fails loudly if the engine ever disagrees with the definition).
"""

from __future__ import annotations

import argparse
import importlib
import textwrap
from pathlib import Path

import numpy as np

import convscope as cs
import convscope.nn as nn
import convscope.nn.functional as F

from .common import output_dir

SEED_003_INPUT = [
    [1, 2, 0, 3, 1],
    [0, 1, 2, 3, 1],
    [1, 2, 1, 0, 0],
    [5, 2, 3, 1, 1],
    [2, 1, 0, 1, 1],
]
SEED_003_KERNEL = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="run the worked examples on embedded data and explain them",
        description="Run the tutorials' worked examples (integer convolution, Conv1d by hand, "
        "layer shapes, strided 'same') on embedded data and print what they show.",
        epilog="example:\n  convscope demo\n  convscope demo --seed 7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "-o",
        "--output",
        default="convscope-output/demo",
        help="folder for the pictures, sounds and animations (convscope-output/demo)",
    )


#: command modules whose ``demo(folder)`` runs their tool on the bundled samples
TOOL_DEMOS = ("image", "kernels", "audio", "explain", "shape", "animate")


def _title(text: str) -> None:
    print(f"\n== {text} ==")


def _show(label: str, tensor: cs.Tensor) -> None:
    body = np.array2string(tensor.numpy(), separator=", ")
    print(f"{label}\n{textwrap.indent(body, '    ')}")


def integer_convolution() -> None:
    _title("Integer convolution by hand (5x5 input, 3x3 kernel)")
    x = cs.tensor(SEED_003_INPUT).reshape(1, 1, 5, 5)
    k = cs.tensor(SEED_003_KERNEL).reshape(1, 1, 3, 3)
    _show("input", x[0, 0])
    _show("kernel", k[0, 0])
    for label, kwargs in (
        ("stride=1", {"stride": 1}),
        ("stride=2", {"stride": 2}),
        ("stride=1, padding=1", {"padding": 1}),
    ):
        y = F.conv2d(x, k, **kwargs)
        _show(f"F.conv2d(input, kernel, {label}) -> shape {y.shape}, dtype {y.dtype}", y[0, 0])
    first = int((x.numpy()[0, 0, :3, :3] * k.numpy()[0, 0]).sum())
    print(f"top-left output = sum(input[0:3, 0:3] * kernel) = {first}")
    try:
        F.conv2d(cs.tensor(SEED_003_INPUT), k)
    except RuntimeError as error:
        print(f"passing the raw 5x5 tensor is rejected: {error}")


def conv1d_by_hand() -> None:
    _title("Conv1d(2, 3, 5): one output element as dot products")
    conv = nn.Conv1d(2, 3, 5)
    x = cs.rand(4, 2, 6)
    y = conv(x)
    print(f"{conv}: weight {conv.weight.shape}, bias {conv.bias.shape}")
    print(f"input {x.shape} -> output {y.shape} (length L - k + 1 = 6 - 5 + 1 = 2)")
    w, b, xs = conv.weight.numpy(), conv.bias.numpy(), x.numpy()
    for t in range(y.shape[2]):
        parts = [float(xs[0, c, t : t + 5] @ w[0, c]) for c in range(2)]
        total = sum(parts) + float(b[0])
        terms = " + ".join(f"x[0,{c},{t}:{t + 5}]@w[0,{c}] ({p:+.6f})" for c, p in enumerate(parts))
        print(
            f"y[0,0,{t}] = {terms} + b[0] ({b[0]:+.6f}) = {total:+.6f}; "
            f"layer gives {float(y[0, 0, t].item()):+.6f}"
        )


def layer_shapes() -> None:
    _title("Layer shapes")
    cases = [
        (nn.Conv2d(3, 16, 3, padding=1), (4, 3, 32, 32)),
        (nn.Conv2d(16, 32, 3, groups=4), (4, 16, 32, 32)),
        (nn.Conv2d(16, 16, 3, groups=16), (4, 16, 32, 32)),
        (nn.Conv2d(16, 32, 1), (4, 16, 30, 30)),
        (nn.Conv1d(256, 100, 3), (2, 256, 50)),
        (nn.Conv3d(1, 32, (3, 3, 3)), (1, 1, 8, 16, 16)),
        (nn.ConvTranspose2d(16, 8, 2, stride=2), (4, 16, 16, 16)),
        (nn.Conv2d(3, 6, 3), (64, 3, 32, 32)),
        (nn.Conv2d(1, 2, (3, 3), padding=1), (1, 1, 257, 188)),
        (nn.Conv2d(2, 2, (5, 5), padding=2), (1, 2, 257, 188)),
        (nn.Conv2d(3, 8, 3, stride=2, padding="same"), (1, 3, 15, 15)),
        (nn.Conv1d(1, 1, 3, dilation=2, padding="causal"), (1, 1, 10)),
    ]
    width = max(len(repr(layer)) for layer, _ in cases)
    for layer, shape in cases:
        out = layer(cs.rand(*shape))
        print(f"{layer!r:<{width}}  weight {layer.weight.shape!s:<16} {shape!s:>20} -> {out.shape}")
    print(
        "(the last two go beyond PyTorch: strided 'same' gives ceil(15/2) = 8; "
        "'causal' pads only the left)"
    )


def run(args: argparse.Namespace) -> int:
    cs.manual_seed(args.seed)
    print(f"convscope {cs.__version__} demo (seed {args.seed})")
    integer_convolution()
    conv1d_by_hand()
    layer_shapes()
    folder = output_dir(args.output)
    for name in TOOL_DEMOS:
        module = importlib.import_module(f"convscope.cli.{name}")
        _title(f"convscope {name}")
        module.demo(folder / name)
    print(f"\nAll outputs are in {Path(folder).resolve()}")
    print(
        "Explore interactively: 'convscope explore' opens a local page with a layer playground "
        "and the bundled trained network (Ctrl-C stops it)"
    )
    return 0
