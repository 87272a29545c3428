"""Convolution options shared by the commands, named like the layer's arguments.

``--kernel-size 3`` or ``--kernel-size 3,5``; ``--padding 1``, ``1,2``, ``same``, ``valid``,
``causal`` or per side ``1:2,0:1`` (before:after for each spatial dimension).

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_conv_arguments(parser, out_channels=4, kernel_size="3", padding="1")
>>> conv_kwargs(parser.parse_args(["--kernel-size", "3,5", "--padding", "same", "--no-bias"]))
{'out_channels': 4, 'kernel_size': (3, 5), 'stride': 1, 'padding': 'same', 'dilation': 1, \
'groups': 1, 'bias': False, 'padding_mode': 'zeros'}
"""

from __future__ import annotations

import argparse
from typing import Any

from ..ops.pad import LAYER_MODES
from .common import UsageError

PADDING_MODES = tuple(LAYER_MODES)
MAX_CHANNELS = 4096  # the tools draw and explain layers: far beyond any picture's use
MAX_EXTENT = 4096  # largest kernel size, stride or dilation the tools accept


def parse_int_tuple(text: str, name: str) -> int | tuple[int, ...]:
    """``"3"`` -> 3, ``"3,5"`` or ``"3x5"`` -> (3, 5); anything else is a ``UsageError``."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--{name} expects an integer or integers like 3,5, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def parse_padding(text: str) -> Any:
    """A padding option: a string form, an int/tuple, or per-side ``before:after`` pairs."""
    text = str(text).strip()
    if text in ("same", "valid", "causal"):
        return text
    if ":" in text:
        pairs = []
        for part in text.split(","):
            before, sep, after = part.partition(":")
            if not sep:
                raise UsageError(f"--padding: give before:after for every dimension, got {text!r}")
            pairs.append((parse_int_tuple(before, "padding"), parse_int_tuple(after, "padding")))
        if any(not isinstance(v, int) for pair in pairs for v in pair):
            raise UsageError(f"--padding: malformed per-side padding {text!r}")
        return tuple(pairs)
    return parse_int_tuple(text, "padding")


def add_conv_arguments(
    parser: argparse.ArgumentParser,
    *,
    out_channels: int = 4,
    kernel_size: str = "3",
    stride: str = "1",
    padding: str = "1",
    dilation: str = "1",
    groups: int = 1,
    padding_mode: str = "zeros",
) -> None:
    """Add ``--out-channels --kernel-size --stride --padding --dilation --groups
    --padding-mode --no-bias`` with the given defaults."""
    group = parser.add_argument_group("convolution (named like the layer's arguments)")
    group.add_argument(
        "--out-channels", type=int, default=out_channels, help=f"output channels ({out_channels})"
    )
    group.add_argument("--kernel-size", default=kernel_size, help=f"e.g. 3 or 3,5 ({kernel_size})")
    group.add_argument("--stride", default=stride, help=f"e.g. 2 or 2,1 ({stride})")
    group.add_argument(
        "--padding",
        default=padding,
        help=f"int, tuple, same, valid, causal or before:after,... ({padding})",
    )
    group.add_argument("--dilation", default=dilation, help=f"e.g. 2 ({dilation})")
    group.add_argument("--groups", type=int, default=groups, help=f"channel groups ({groups})")
    group.add_argument(
        "--padding-mode",
        choices=PADDING_MODES,
        default=padding_mode,
        help=f"value of the padding cells ({padding_mode})",
    )
    group.add_argument("--no-bias", action="store_true", help="layer without bias")


def conv_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``nn.ConvNd(in_channels, **kwargs)`` from parsed options."""
    if not 1 <= args.out_channels <= MAX_CHANNELS:
        raise UsageError(f"--out-channels must be in 1..{MAX_CHANNELS}, got {args.out_channels}")
    kwargs = {
        "out_channels": args.out_channels,
        "kernel_size": parse_int_tuple(args.kernel_size, "kernel-size"),
        "stride": parse_int_tuple(args.stride, "stride"),
        "padding": parse_padding(args.padding),
        "dilation": parse_int_tuple(args.dilation, "dilation"),
        "groups": args.groups,
        "bias": not args.no_bias,
        "padding_mode": args.padding_mode,
    }
    for name in ("kernel_size", "stride", "dilation"):
        values = kwargs[name] if isinstance(kwargs[name], tuple) else (kwargs[name],)
        if any(abs(v) > MAX_EXTENT for v in values):
            option = name.replace("_", "-")
            raise UsageError(f"--{option} values must be at most {MAX_EXTENT}, got {values}")
    return kwargs
