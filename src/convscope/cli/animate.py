"""``convscope animate``: the sliding-kernel animation of a 1-D or 2-D convolution.

The options are named like the layer's arguments; the animation's file name is derived
from them (or ``--name``).  ``--gallery`` writes the classic conv-arithmetic set instead.

>>> parser = build_parser()
>>> config_from_args(parser.parse_args(["--input-size", "7", "--stride", "2"]))
AnimationConfig(input_size=(7,), kernel_size=3, stride=2, padding=0, dilation=1, \
padding_mode='zeros', transposed=False, output_padding=0)
>>> config_from_args(parser.parse_args(["--kernel-size", "4", "--padding", "2"])).name()
'conv2d_5x5_k4_p2'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..viz import animation
from .common import UsageError, check_elements, output_dir, write_atomically
from .conv_options import PADDING_MODES, parse_int_tuple, parse_padding

EXAMPLES = """examples:
  convscope animate                                  # 5x5 input, 3x3 kernel -> GIF
  convscope animate --input-size 5 --stride 2 --padding 1 --numbers
  convscope animate --input-size 7,7 --dilation 2
  convscope animate --input-size 4,4 --padding 2 --padding-mode reflect --numbers
  convscope animate --input-size 3,3 --transposed --stride 2 --padding 1 --output-padding 1
  convscope animate --padding 1:2,0:1 --format webp --fps 2 --name asymmetric
  convscope animate --gallery -o conv-arithmetic     # the classic set and its transposes
"""

#: the gallery files ``convscope demo`` writes (a few, to keep the demo quick)
DEMO_SET = ("no_padding_no_strides", "padding_strides", "dilation", "padding_strides_transposed")
MAX_CELLS = 128 * 128  # an animation draws a frame per output cell: beyond this it is unwatchable
_CONV_OPTIONS = ("input_size", "kernel_size", "stride", "padding", "dilation", "output_padding")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the options of ``convscope animate`` to ``parser`` (a new one if None)."""
    parser = parser or argparse.ArgumentParser(prog="convscope animate")
    conv = parser.add_argument_group("convolution (named like the layer's arguments)")
    conv.add_argument(
        "--dim", type=int, choices=(1, 2), help="1-D or 2-D (default: from --input-size, else 2)"
    )
    conv.add_argument("--input-size", help="e.g. 5 (1-D), 5,5 or 5x6 (default 5 per dimension)")
    conv.add_argument("--kernel-size", help="e.g. 3 or 3,5 (3)")
    conv.add_argument("--stride", help="e.g. 2 or 2,1 (1)")
    conv.add_argument("--padding", help="int, tuple, same, valid, causal or before:after,... (0)")
    conv.add_argument("--dilation", help="e.g. 2 (1)")
    conv.add_argument(
        "--padding-mode",
        choices=PADDING_MODES,
        default="zeros",
        help="value of the padding cells (zeros)",
    )
    conv.add_argument(
        "--transposed",
        action="store_true",
        help="transposed convolution, drawn on the zero-inserted input",
    )
    conv.add_argument("--output-padding", help="transposed only: extra cells at the end (0)")
    look = parser.add_argument_group("animation")
    look.add_argument(
        "--numbers",
        action="store_true",
        help="write seeded small integers and the layer's outputs in the cells",
    )
    look.add_argument("--seed", type=int, default=0, help="seed of the numbers (0)")
    look.add_argument(
        "--format",
        choices=animation.FORMATS,
        default="gif",
        help="gif (default), webp, or mp4 (needs PyAV: convscope[video])",
    )
    timing = look.add_mutually_exclusive_group()
    timing.add_argument("--fps", type=float, help="frames per second (default 1.4)")
    timing.add_argument("--duration", type=int, help="milliseconds per frame (700)")
    look.add_argument("--cell", type=int, default=44, help="cell size in pixels (44)")
    look.add_argument(
        "--gallery",
        action="store_true",
        help="write the classic conv-arithmetic set (and transposes) instead",
    )
    look.add_argument(
        "-o",
        "--output",
        default="convscope-output/animate",
        help="output folder (convscope-output/animate)",
    )
    look.add_argument("--name", help="file name without extension (default: from the options)")
    return parser


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    build_parser(
        sub.add_parser(
            name,
            help="animate the sliding kernel of a 1-D or 2-D convolution (GIF/WebP/MP4)",
            description="Animate a convolution frame by frame: the padded (or zero-inserted)\n"
            "input in blue with the kernel's taps highlighted, the output in cyan, and the\n"
            "output-size formula filled in.  The highlighted cells come from the engine itself.",
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def _ints(text: str | None, name: str, default: int) -> Any:
    return default if text is None else parse_int_tuple(text, name)


def config_from_args(args: argparse.Namespace) -> animation.AnimationConfig:
    """The :class:`~convscope.viz.animation.AnimationConfig` the options describe."""
    size = None if args.input_size is None else parse_int_tuple(args.input_size, "input-size")
    kwargs = {
        "kernel_size": _ints(args.kernel_size, "kernel-size", 3),
        "stride": _ints(args.stride, "stride", 1),
        "padding": 0 if args.padding is None else parse_padding(args.padding),
        "dilation": _ints(args.dilation, "dilation", 1),
    }
    if args.output_padding is not None and not args.transposed:
        raise UsageError("--output-padding only applies with --transposed")
    dim = args.dim
    if dim is None:  # from --input-size, else from the longest tuple option, else 2-D
        lengths = [len(v) for v in kwargs.values() if isinstance(v, tuple)]
        if isinstance(size, tuple):
            dim = len(size)
        else:
            dim = max(lengths, default=2 if size is None else 1)
    if size is None or isinstance(size, int):
        size = (5 if size is None else size,) * dim
    elif len(size) != dim:
        raise UsageError(
            f"--input-size {args.input_size} has {len(size)} values but --dim is {dim}"
        )
    if dim not in (1, 2):
        raise UsageError(
            f"animations are 1-D or 2-D, but the options describe {dim}-D "
            f"(input size {'x'.join(map(str, size))})"
        )
    check_elements(size, "the animated input", limit=MAX_CELLS)  # one frame per output cell
    return animation.AnimationConfig(
        size,
        **kwargs,
        padding_mode=args.padding_mode,
        transposed=args.transposed,
        output_padding=_ints(args.output_padding, "output-padding", 0),
    )


def _duration(args: argparse.Namespace) -> int:
    if args.fps is not None:
        if not 0.01 <= args.fps <= 50:
            raise UsageError(f"--fps must be between 0.01 and 50, got {args.fps}")
        return max(20, round(1000 / args.fps))
    duration = 700 if args.duration is None else args.duration
    if duration < 20:
        raise UsageError(f"--duration must be at least 20 ms per frame, got {duration}")
    return duration


def _file_name(args: argparse.Namespace, config: animation.AnimationConfig) -> str:
    if args.name is None:
        return f"{config.name()}.{args.format}"
    name = args.name.removesuffix(f".{args.format}")
    if not name or name != Path(name).name or name.startswith("."):
        raise UsageError(f"--name must be a plain file name, got {args.name!r}")
    return f"{name}.{args.format}"


def _write(path: Path, frames: list, format: str, duration: int) -> None:
    write_atomically(path, lambda temp: animation.save(frames, temp, format, duration=duration))
    print(path)


def run(args: argparse.Namespace) -> int:
    given = [f"--{o.replace('_', '-')}" for o in _CONV_OPTIONS if getattr(args, o) is not None]
    given += [f"--{o}" for o in ("dim", "transposed", "name") if getattr(args, o)]
    given += ["--padding-mode"] if args.padding_mode != "zeros" else []
    if args.gallery and given:
        raise UsageError(f"--gallery draws its own configurations; drop {' '.join(given)}")
    duration = _duration(args)
    if args.cell < 16 or args.cell > 200:
        raise UsageError(f"--cell must be between 16 and 200 pixels, got {args.cell}")
    animation.check_format(args.format)  # before any work: e.g. the PyAV install hint
    if args.gallery:
        folder = output_dir(args.output)
        for name, config in animation.GALLERY.items():
            frames = animation.render(config, numbers=args.numbers, seed=args.seed, cell=args.cell)
            _write(folder / f"{name}.{args.format}", frames, args.format, duration)
        return 0
    config = config_from_args(args)
    frames = animation.render(config, numbers=args.numbers, seed=args.seed, cell=args.cell)
    folder = output_dir(args.output)
    _write(folder / _file_name(args, config), frames, args.format, duration)
    return 0


def demo(folder: Path) -> None:
    """Write a few classic animations (GIF, numbers on) into ``folder`` and list them."""
    target = output_dir(folder)
    for name in DEMO_SET:
        frames = animation.render(animation.GALLERY[name], numbers=True)
        path = target / f"{name}.gif"
        _write(path, frames, "gif", 700)
    print("(blue: input, dashed: padding/inserted zeros, dark: the kernel, cyan: output)")
