"""The C allocator's policy for big arrays: keep freed blocks for reuse.

glibc gives every allocation above its mmap threshold (32 MiB at most by default) fresh pages
from the kernel and hands them back on free, so each forward pass of a network at batch 8
faults in and zeroes its big activations again.  At the first convolution convscope raises the
threshold to :data:`REUSE_BELOW` and the heap's trim threshold to :data:`KEEP_FREE`: a freed
activation then stays in the heap and the next one of its size reuses it.  Measured on the
2-core machine (2 threads, whole networks at batch 8, one process each, medians): MobileNetV2
150 -> 97-102 ms, a U-Net at 256x256 1490 -> 1090 ms, EfficientNet-B0 202 -> 188 ms.  The
peak is unchanged; what changes is that memory freed after the peak stays with the process
(up to :data:`KEEP_FREE` of it) until :func:`release`.

Only on glibc (elsewhere nothing happens); ``CONVSCOPE_MALLOC=system`` in the environment
keeps the C library's defaults.

>>> apply() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading

REUSE_BELOW = 256 << 20
"""Allocations up to this many bytes come from the heap (and return to it when freed)."""

KEEP_FREE = 512 << 20
"""Free memory the heap may keep at its top before giving it back to the system."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_lock = threading.Lock()
_applied: bool | None = None


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc


def apply() -> bool:
    """Set the policy once per process (later calls do nothing); True when it is in force."""
    global _applied
    if _applied is not None:
        return _applied
    with _lock:
        if _applied is None:
            libc = None if os.environ.get("CONVSCOPE_MALLOC") == "system" else _libc()
            _applied = bool(
                libc is not None
                and libc.mallopt(_M_MMAP_THRESHOLD, REUSE_BELOW)
                and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREE)
            )
    return _applied


def release() -> None:
    """Give the free memory the heap keeps back to the system (glibc's ``malloc_trim``), e.g.
    after a big batch in a process that goes on with little.

    >>> release()
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
