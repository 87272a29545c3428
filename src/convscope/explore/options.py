"""Query strings read with the command line's own option parsers, and the API's size limits.

``/api/explain?kernel-size=3&stride=2`` is parsed by the very parser of ``convscope explain``
(``--kernel-size=3 --stride=2``), so the page and the command line accept the same options,
defaults and errors.  Option names may use ``-`` or ``_``; a flag is on with ``1``, ``true``,
``yes``, ``on`` or an empty value.  Arrays (``input``, ``weight``, ``bias``) must be literals:
the API never reads a file named in a request.

>>> args = parse_query("explain", {"kernel_size": ["3"], "transposed": ["1"]})
>>> args.kernel_size, args.transposed, args.stride
('3', True, '1')
>>> parse_query("explain", {"input": ["/etc/passwd"]})
Traceback (most recent call last):
...
convscope.explore.options.ApiError: input: the page accepts array literals of numbers like \
[[1,2],[3,4]], not file names or other text
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ..cli.common import UsageError
from ..cli.conv_options import parse_int_tuple

#: largest input, output or weight tensor (elements) an API request may build
MAX_TENSOR = 1 << 18
#: largest tap map (output positions x kernel taps) a request may compute
MAX_TAPS = 1 << 20
#: largest number of products one explained element may list
MAX_PRODUCTS = 1 << 14
#: longest array literal (characters) and deepest nesting accepted
MAX_LITERAL = 60_000
MAX_NESTING = 6
#: options only the terminal output uses; accepted and ignored (the API answers in JSON)
IGNORED = frozenset({"json", "width", "narrow"})
ARRAY_OPTIONS = ("input", "weight", "bias")
LITERAL_CHARS = frozenset("0123456789.-+eE,[]() \t\n\r")
TRUE, FALSE = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


class ApiError(Exception):
    """A request the API refuses: HTTP ``status`` with a one-line ``message``."""

    def __init__(self, message: str, status: int = 400, kind: str = "UsageError") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ApiError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise ApiError(message or "option not available here")


@functools.cache
def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``convscope <command>`` (built once; parsing does not change it)."""
    from ..cli import command_module

    root = _Parser(prog="convscope", add_help=False)
    sub = root.add_subparsers(dest="command")
    command_module(command).add_parser(sub, command)
    return sub.choices[command]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option[2:]: action
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def _check_literal(name: str, text: str) -> None:
    stripped = text.strip()
    if not stripped or any(ch not in LITERAL_CHARS for ch in stripped):
        raise ApiError(
            f"{name}: the page accepts array literals of numbers like [[1,2],[3,4]], not file "
            "names or other text"
        )
    if len(stripped) > MAX_LITERAL:
        raise ApiError(
            f"{name}: array literal of {len(stripped)} characters; the limit is {MAX_LITERAL}",
            status=413,
        )
    depth = deepest = 0
    for char in stripped:
        depth += char in "[("
        depth -= char in "])"
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise ApiError(f"{name}: arrays nested {deepest} deep; at most {MAX_NESTING} levels")


def to_argv(
    command: str, query: Mapping[str, Sequence[str]], skip: Sequence[str] = ()
) -> list[str]:
    """The command-line arguments a query stands for (``{"stride": ["2"]}`` -> ``--stride=2``).

    >>> to_argv("shape", {"input_size": ["5"], "transposed": ["true"], "no-bias": ["0"]})
    ['--input-size=5', '--transposed']
    """
    options = _options(command_parser(command))
    argv = []
    for key, values in query.items():
        name = key.replace("_", "-")
        if name in skip:
            continue
        action = options.get(name)
        if action is None:
            known = ", ".join(sorted(n for n in options if n not in IGNORED))
            raise ApiError(f"unknown option {key!r} for {command}; options: {known}")
        if len(values) != 1:
            raise ApiError(f"option {key!r} given {len(values)} times")
        value = values[0]
        if action.nargs == 0:
            if value.strip().lower() in TRUE:
                argv.append(f"--{name}")
            elif value.strip().lower() not in FALSE:
                raise ApiError(f"{key}: a flag takes true or false, got {value!r}")
            continue
        if name in ARRAY_OPTIONS:
            _check_literal(name, value)
        argv.append(f"--{name}={value}")
    return argv


def parse_query(
    command: str, query: Mapping[str, Sequence[str]], skip: Sequence[str] = ()
) -> argparse.Namespace:
    """The namespace ``convscope <command>`` would run with for this query."""
    return command_parser(command).parse_args(to_argv(command, query, skip))


# ----------------------------------------------------------------------------- limits
def int_tuple(text: Any, name: str) -> tuple[int, ...]:
    """``"3,5"`` -> ``(3, 5)``, ``"3"`` -> ``(3,)``; an ``ApiError`` for anything else."""
    try:
        value = parse_int_tuple(str(text), name)
    except UsageError as error:
        raise ApiError(str(error)) from None
    return (value,) if isinstance(value, int) else tuple(value)


def count(shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` (``math.prod`` of ints, no overflow)."""
    return math.prod(int(s) for s in shape)


def check_count(shape: Sequence[int], what: str, limit: int = MAX_TENSOR) -> None:
    """``ApiError`` (413) when a tensor of ``shape`` would be larger than ``limit`` elements."""
    if count(shape) > limit:
        raise ApiError(
            f"{what} of shape {'x'.join(map(str, shape))} has {count(shape)} elements; the "
            f"page's limit is {limit}: choose smaller sizes",
            status=413,
        )


def check_layer_args(args: argparse.Namespace) -> None:
    """Refuse, before anything is allocated, sizes beyond the limits (explain's options)."""
    for name in ("batch", "in_channels", "out_channels", "groups"):
        value = getattr(args, name, None)
        if value is not None and value > 4096:
            raise ApiError(
                f"--{name.replace('_', '-')} {value} is beyond the page's limit 4096", status=413
            )
    groups = max(1, args.groups or 1)
    channels = args.in_channels or (2 if groups <= 2 else groups)
    if args.input_size:
        sizes = int_tuple(args.input_size, "input-size")
        check_count((args.batch or 1, channels, *sizes), "the input")
    kernel = int_tuple(args.kernel_size or "3", "kernel-size")
    out = args.out_channels or 2
    check_count((out, max(1, channels // groups), *kernel), "the weight")


def check_run(layer: Any, input_shape: Sequence[int], output_shape: Sequence[int]) -> None:
    """Refuse layers whose output, tap map or explained element is beyond the limits."""
    check_count(output_shape, "the output")
    taps = count(layer.kernel_size)
    spatial = output_shape[-len(layer.kernel_size) :]
    check_count((*spatial, taps), "the tap map (outputs x kernel taps)", MAX_TAPS)
    check_count((layer.in_channels // layer.groups, taps), "one element's products", MAX_PRODUCTS)
