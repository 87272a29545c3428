"""Plain-text building blocks of the learning tools: numbers, aligned tables, grids.

Everything returns lists of lines (or one string) so callers can place blocks side by side.

>>> print(table([["kernel_size", "(3, 3)"], ["stride", "(2, 2)"]], header=["name", "value"]))
name         value
kernel_size  (3, 3)
stride       (2, 2)
>>> print("\\n".join(side_by_side([grid(np.array([["1", "2"], ["3", "4"]])), ["*"], ["5"]])))
1 2   *   5
3 4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def dim_names(n: int) -> tuple[str, ...]:
    """Names of ``n`` spatial dimensions as PyTorch's docs write them: L; H, W; D, H, W.

    >>> dim_names(3)
    ('D', 'H', 'W')
    """
    return DIM_NAMES.get(n, tuple(f"S{i}" for i in range(n)))


def number(value: Any, precision: int = 4) -> str:
    """An int as is, a float with ``precision`` decimals (tiny values in scientific notation).

    >>> number(3), number(0.16832), number(-2.5e-7), number(0.0)
    ('3', '0.1683', '-2.500e-07', '0.0000')
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    value = float(value) + 0.0  # no "-0.0000"
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.{precision}f}"
    if value != 0 and float(text) == 0:
        return f"{value:.{max(precision - 1, 1)}e}"
    return text


def signed(text: str) -> str:
    """A term of a written-out sum: negative numbers in parentheses.

    >>> signed("-0.5"), signed("2")
    ('(-0.5)', '2')
    """
    return f"({text})" if text.startswith("-") else text


def index_text(index: Sequence[int]) -> str:
    """``(0, 1, 3)`` -> ``"0, 1, 3"`` (the inside of a subscript)."""
    return ", ".join(str(int(i)) for i in index)


def shape_text(shape: Sequence[int]) -> str:
    """A shape as PyTorch users write it: ``(4, 3, 2)``, ``(3,)``."""
    return str(tuple(int(s) for s in shape))


def table(
    rows: Sequence[Sequence[str]],
    header: Sequence[str] | None = None,
    indent: int = 0,
    right: Sequence[int] = (),
) -> str:
    """Rows of strings as aligned columns (two spaces apart); ``right`` columns right-aligned."""
    body = [list(map(str, row)) for row in ([header] if header else []) + list(rows)]
    if not body:
        return ""
    width = max(len(row) for row in body)
    body = [row + [""] * (width - len(row)) for row in body]
    sizes = [max(len(row[c]) for row in body) for c in range(width)]
    lines = []
    for row in body:
        cells = [
            cell.rjust(size) if c in right else cell.ljust(size)
            for c, (cell, size) in enumerate(zip(row, sizes, strict=True))
        ]
        lines.append(" " * indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def grid(cells: np.ndarray, labels: Sequence[str] = ()) -> list[str]:
    """An array of strings as right-aligned rows; 1-D is one row, N-D a stack of 2-D slices.

    ``labels`` name the leading dimensions of an N-D array (``"d"`` gives ``d=0`` ...).

    >>> grid(np.array([["1", "-2"], ["3", "4"]]))
    [' 1 -2', ' 3  4']
    >>> grid(np.array([[["a"]], [["b"]]]), labels=["d"])
    ['d=0', 'a', 'd=1', 'b']
    """
    cells = np.asarray(cells, dtype=object)
    width = max((len(str(c)) for c in cells.flat), default=0)
    if cells.ndim <= 1:
        return [" ".join(str(c).rjust(width) for c in np.atleast_1d(cells))]
    if cells.ndim == 2:
        return [" ".join(str(c).rjust(width) for c in row) for row in cells]
    lines = []
    lead = cells.shape[: cells.ndim - 2]
    names = list(labels) + [f"s{i}" for i in range(len(labels), len(lead))]
    for index in np.ndindex(lead):
        lines.append(", ".join(f"{names[i]}={v}" for i, v in enumerate(index)))
        lines.extend(" ".join(str(c).rjust(width) for c in row) for row in cells[index])
    return lines


def side_by_side(blocks: Sequence[Sequence[str]], gap: int = 3) -> list[str]:
    """Blocks of lines next to each other, top-aligned, each padded to its own width."""
    height = max(len(b) for b in blocks)
    widths = [max((len(line) for line in b), default=0) for b in blocks]
    lines = []
    for row in range(height):
        parts = [
            (b[row] if row < len(b) else "").ljust(w) for b, w in zip(blocks, widths, strict=True)
        ]
        lines.append((" " * gap).join(parts).rstrip())
    return lines


def wrap_sum(left: str, terms: Sequence[str], right: str, width: int) -> list[str]:
    """``left = t1 + t2 + ... = right`` wrapped at ``width``, continuation lines under ``t1``.

    >>> wrap_sum("y", ["1", "2", "3"], "6", width=40)
    ['y = 1 + 2 + 3 = 6']
    >>> wrap_sum("y", ["10", "20", "30"], "60", width=14)
    ['y = 10 + 20', '    + 30 = 60']
    """
    head = f"{left} = "
    pieces = [terms[0]] + [f"+ {t}" for t in terms[1:]]
    if right:
        pieces[-1] += f" = {right}"
    lines, line = [], head + pieces[0]
    for piece in pieces[1:]:
        if len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * len(head) + piece
        else:
            line += " " + piece
    return [*lines, line]


def wrap_items(
    head: str, items: Sequence[str], width: int, indent: int = 0, sep: str = ","
) -> list[str]:
    """``head item, item, ...`` wrapped at ``width``; continuation lines indented by ``indent``.

    >>> wrap_items("cells:", ["a1", "b2", "c3"], width=12, indent=2)
    ['cells: a1,', '  b2, c3']
    """
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (sep if i < len(items) - 1 else "")
        if line.strip() and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * indent + piece
        else:
            line = f"{line} {piece}" if line.strip() else line + piece
    return [*lines, line]


def rule(width: int, char: str = "=") -> str:
    """A horizontal divider."""
    return char * width
