"""The workspace budget: the most bytes any intermediate buffer of an op may take.

Unfold (im2col) matrices, padded input slabs and other scratch arrays are sized to fit the
budget; larger work is split into chunks.  The default is 512 MiB, or the value of the
``CONVSCOPE_WORKSPACE_BYTES`` environment variable.

>>> import convscope as cs
>>> with cs.workspace_budget(1 << 20):
...     cs.get_workspace_budget()
1048576
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

DEFAULT_WORKSPACE_BYTES = 512 << 20

_budget = int(os.environ.get("CONVSCOPE_WORKSPACE_BYTES", DEFAULT_WORKSPACE_BYTES))


def get_workspace_budget() -> int:
    """The current budget in bytes."""
    return _budget


def set_workspace_budget(nbytes: int) -> None:
    """Set the budget in bytes (must be positive)."""
    global _budget
    nbytes = int(nbytes)
    if nbytes <= 0:
        raise ValueError(f"the workspace budget must be a positive number of bytes, got {nbytes}")
    _budget = nbytes


@contextlib.contextmanager
def workspace_budget(nbytes: int) -> Iterator[int]:
    """Temporarily use a budget of ``nbytes`` bytes."""
    previous = get_workspace_budget()
    set_workspace_budget(nbytes)
    try:
        yield nbytes
    finally:
        set_workspace_budget(previous)
