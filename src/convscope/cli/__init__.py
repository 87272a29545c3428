"""The ``convscope`` command: one entry point with subcommands.

Bad input ends with one line on stderr and exit code 2, never a traceback.
Each subcommand lives in its own module with ``add_parser(sub, name)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from .common import OneLineParser, UsageError

#: subcommand name -> module (imported when the parser is built; heavy libraries load lazily)
COMMANDS = {
    "demo": "convscope.cli.demo",
    "train": "convscope.cli.train",
    "image": "convscope.cli.image",
    "audio": "convscope.cli.audio",
    "video": "convscope.cli.video",
    "kernels": "convscope.cli.kernels",
    "explain": "convscope.cli.explain",
    "shape": "convscope.cli.shape",
    "summary": "convscope.cli.summary",
    "animate": "convscope.cli.animate",
    "classify": "convscope.cli.classify",
    "explore": "convscope.cli.explore",
}


def command_module(name: str) -> ModuleType:
    """The module implementing subcommand ``name``."""
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="convscope",
        description="PyTorch's convolution layers on NumPy, and tools to see what they do.",
        epilog="Run 'convscope COMMAND --help' for the options and examples of a command.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command_module(name).add_parser(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return command_module(args.command).run(args) or 0
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, RuntimeError, TypeError, OSError) as error:
        print(f"convscope {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError as error:  # a size no option check caught: still one line, exit 2
        print(
            f"convscope {args.command}: error: not enough memory for this request ({error}); "
            "choose smaller sizes",
            file=sys.stderr,
        )
        return 2
    except (ArithmeticError, IndexError) as error:  # overflow, division by zero
        print(f"convscope {args.command}: error: value out of range: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convscope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
