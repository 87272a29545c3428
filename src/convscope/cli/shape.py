"""``convscope shape``: output sizes with the formula filled in, and the inverse questions.

The answer comes from building the layer and running it on an empty batch, so a rejected
configuration is reported with PyTorch's exception class and words.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import UsageError, output_dir, write_atomically
from .conv_options import add_conv_arguments, conv_kwargs, parse_int_tuple, parse_padding

EXAMPLES = """examples:
  convscope shape --input-size 32,32 --kernel-size 3 --stride 2 --padding 1
  convscope shape --transposed --input-size 8,8 --kernel-size 2 --stride 2
  convscope shape --input-size 10 --kernel-size 3 --stride 3 --padding same
  # which padding gives output size 14 from 28 with a 4x4 kernel, stride 2?
  convscope shape --input-size 28,28 --kernel-size 4 --stride 2 --target-size 14
  # Conv2d(k=3, s=2, p=1) shrinks 28x27; which output_padding restores it?
  convscope shape --restore 28,27 --kernel-size 3 --stride 2 --padding 1
  convscope shape --transposed --input-size 5 --kernel-size 3 --stride 2 --padding 1 --restore 10
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="output sizes with the formula filled in; solve for padding / output_padding",
        description="Compute a convolution's output shape with every dimension's formula "
        "filled in, or answer the inverse questions: which padding gives a target size "
        "(--target-size), which output_padding makes a transposed convolution restore a size "
        "(--restore).  Rejections are reported in PyTorch's words.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    layer = parser.add_argument_group("layer and input")
    layer.add_argument("--dim", type=int, choices=(1, 2, 3), help="spatial dimensions")
    layer.add_argument("--transposed", action="store_true", help="ConvTranspose instead of Conv")
    layer.add_argument("--input-size", help="spatial input size, e.g. 32,32")
    layer.add_argument("--in-channels", type=int, default=1, help="input channels (1)")
    layer.add_argument("--batch", type=int, default=1, help="batch size (1)")
    layer.add_argument("--output-padding", help="transposed only, e.g. 1 (0)")
    add_conv_arguments(parser, out_channels=1, kernel_size="3", padding="0")
    parser.set_defaults(padding=None)
    ask = parser.add_argument_group("inverse questions")
    ask.add_argument(
        "--target-size", help="solve for the padding (and output_padding) giving this output size"
    )
    ask.add_argument(
        "--restore",
        metavar="H",
        help="solve for the output_padding restoring size H: the transposed layer's output "
        "(with --transposed) or the size a plain convolution shrinks and its transpose undoes",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _sizes(text: str, option: str, dim: int | None) -> tuple[int, ...]:
    value = parse_int_tuple(text, option)
    sizes = (value,) * (dim or 1) if isinstance(value, int) else value
    if dim is not None and len(sizes) != dim:
        raise UsageError(f"--{option} has {len(sizes)} values, --dim is {dim}")
    if min(sizes) < 1:
        raise UsageError(f"--{option} must be positive, got {text}")
    return sizes


def _dim(args: argparse.Namespace) -> int | None:
    if args.dim:
        return args.dim
    for text, option in (
        (args.input_size, "input-size"),
        (args.restore, "restore"),
        (args.target_size, "target-size"),
    ):
        if text:
            value = parse_int_tuple(text, option)
            if not isinstance(value, int):
                return len(value)
    return None


def _rejected(error: Exception) -> UsageError:
    """A layer's rejection, named by the exception class PyTorch raises for it."""
    return UsageError(f"{type(error).__name__}: {error}")


def answer(args: argparse.Namespace) -> Any:
    """The answer object (:mod:`convscope.explain.shapes`) the options ask for."""
    from ..explain import shapes

    if args.target_size and args.restore:
        raise UsageError("ask one question at a time: --target-size or --restore")
    dim = _dim(args) or (1 if not args.input_size else None)
    args.padding = "0" if args.padding is None else args.padding
    conv = conv_kwargs(args)
    geometry = {k: conv[k] for k in ("kernel_size", "stride", "dilation")}
    try:
        if args.target_size:
            if args.padding != "0" or args.output_padding:
                raise UsageError("--target-size solves for the padding: leave out --padding")
            size = _required_size(args, dim)
            target = _sizes(args.target_size, "target-size", len(size))
            return shapes.padding_for(size, target, transposed=args.transposed, **geometry)
        padding = parse_padding(args.padding)
        if args.restore and args.transposed:
            if args.output_padding:
                raise UsageError("--restore solves for the output_padding: leave it out")
            size = _required_size(args, dim)
            wanted = _sizes(args.restore, "restore", len(size))
            return shapes.output_padding_for(size, wanted, padding=padding, **geometry)
        if args.restore:
            if args.input_size:
                raise UsageError(
                    "--restore H is the plain convolution's input size: leave out --input-size "
                    "(or add --transposed to give the transposed layer's input)"
                )
            return shapes.restore(_sizes(args.restore, "restore", dim), padding=padding, **geometry)
        size = _required_size(args, dim)
        output_padding = parse_int_tuple(args.output_padding or "0", "output-padding")
        return shapes.conv_shape(
            size,
            transposed=args.transposed,
            output_padding=output_padding,
            in_channels=args.in_channels,
            out_channels=conv["out_channels"],
            groups=conv["groups"],
            batch=args.batch,
            padding_mode=conv["padding_mode"],
            padding=padding,
            **geometry,
        )
    except (ValueError, RuntimeError, TypeError) as error:
        raise _rejected(error) from None


def _required_size(args: argparse.Namespace, dim: int | None) -> tuple[int, ...]:
    if not args.input_size:
        raise UsageError("--input-size is needed (spatial size, e.g. 32,32)")
    return _sizes(args.input_size, "input-size", dim)


def run(args: argparse.Namespace) -> int:
    result = answer(args)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result)
    return 0


def demo(folder: Path) -> None:
    """A few shape questions from the tutorials, one rejection and the inverse questions."""
    from ..explain import shapes

    folder = output_dir(folder)
    results = {
        "seed 003: Conv2d(3, 6, 3) on a (64, 3, 32, 32) batch": shapes.conv_shape(
            (32, 32), 3, in_channels=3, out_channels=6, batch=64
        ),
        "seed 002: ConvTranspose2d(16, 8, 2, stride=2) doubles H and W": shapes.conv_shape(
            (8, 8), 2, 2, transposed=True, in_channels=16, out_channels=8
        ),
        "strided 'same' (beyond PyTorch): ceil(10 / 3) = 4": shapes.conv_shape(
            10, 3, stride=3, padding="same"
        ),
        "which padding turns 28x28 into 14x14 with a 4x4 kernel, stride 2?": shapes.padding_for(
            (28, 28), 14, kernel_size=4, stride=2
        ),
        "Conv2d(k=3, s=2, p=1) shrinks 28x27; which output_padding undoes it?": shapes.restore(
            (28, 27), kernel_size=3, stride=2, padding=1
        ),
    }
    for title, result in results.items():
        print(f"-- {title}\n{result}\n")
    try:
        shapes.conv_shape((2, 2), 3)
    except RuntimeError as error:
        print(f"-- a 3x3 kernel on a 2x2 input is rejected, as by PyTorch:\n{error}")
    data = {title: result.to_dict() for title, result in results.items()}
    path = folder / "shape_answers.json"
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))
    print(f"\nJSON written to {path}")
