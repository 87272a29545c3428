"""``c = a @ b + beta * c`` straight through the BLAS NumPy uses (OpenBLAS's ``cblas_?gemm``).

``np.matmul`` always overwrites its output, so adding a product into a running total costs a
temporary and a pass over it.  BLAS's GEMM adds into ``c`` itself (``beta = 1``), reading
operands in place at any row stride.  This module finds ``cblas_sgemm``/``cblas_dgemm`` in
the OpenBLAS that threadpoolctl reports (the library :func:`threads.blas_threads` steers),
with its symbol prefix/suffix and integer width read from the library itself, checks the
binding once on a small product, and otherwise reports it unavailable (callers then use
``np.matmul`` and an add).  ctypes releases the GIL during the call, so convscope's threads
run their GEMMs side by side.

>>> import numpy as np
>>> gemm = accumulating(np.dtype(np.float64))
>>> c = np.ones((2, 2))
>>> if gemm is not None:
...     gemm(np.eye(2), np.full((2, 2), 3.0), c, 1.0)
... else:
...     c += np.eye(2) @ np.full((2, 2), 3.0)
>>> c.tolist()
[[4.0, 4.0], [4.0, 4.0]]
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import numpy as np

from . import threads

Gemm = Callable[[np.ndarray, np.ndarray, np.ndarray, float], None]

_ROW_MAJOR, _NO_TRANS = 101, 111


@functools.lru_cache(maxsize=4)
def accumulating(dtype: np.dtype) -> Gemm | None:
    """``gemm(a, b, c, beta)``: ``c = a @ b + beta * c`` for 2-D ``float32``/``float64``
    operands of ``dtype`` whose rows are contiguous (any row stride), or ``None`` when no
    usable BLAS routine is found (or ``dtype`` is another type)."""
    dtype = np.dtype(dtype)
    letter = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}.get(dtype)
    if letter is None:
        return None
    for controller in threads._blas():
        routine = _bind(controller, letter, dtype)
        if routine is not None and _works(routine, dtype):
            return routine
    return None


def _bind(controller: object, letter: str, dtype: np.dtype) -> Gemm | None:
    if getattr(controller, "internal_api", None) != "openblas":
        return None
    try:
        library = ctypes.CDLL(controller.filepath)
    except (OSError, AttributeError, TypeError):
        return None
    for prefix, suffix in (("", ""), ("scipy_", "64_"), ("", "64_"), ("scipy_", "")):
        gemm = getattr(library, f"{prefix}cblas_{letter}gemm{suffix}", None)
        config = getattr(library, f"{prefix}openblas_get_config{suffix}", None)
        if gemm is not None and config is not None:
            break
    else:
        return None
    config.restype, config.argtypes = ctypes.c_char_p, []
    wide = b"USE64BITINT" in (config() or b"")
    index = ctypes.c_int64 if wide else ctypes.c_int32
    scalar = ctypes.c_float if letter == "s" else ctypes.c_double
    pointer = ctypes.c_void_p
    gemm.restype = None
    gemm.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        index,
        index,
        index,
        scalar,
        pointer,
        index,
        pointer,
        index,
        scalar,
        pointer,
        index,
    ]
    size = dtype.itemsize

    def leading(array: np.ndarray) -> int:
        """The row stride in elements BLAS gets (checked: contiguous rows, no overlap)."""
        rows, cols = array.shape
        if array.dtype != dtype or (cols > 1 and array.strides[1] != size):
            raise ValueError("blas_gemm: operands need contiguous rows of the routine's type")
        if rows <= 1:
            return max(cols, 1)
        step, rest = divmod(array.strides[0], size)
        if rest or step < max(cols, 1):
            raise ValueError(f"blas_gemm: rows {array.strides[0]} bytes apart overlap")
        return step

    def run(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
        (m, k), n = a.shape, b.shape[1]
        if not c.flags.writeable or b.shape[0] != k or c.shape != (m, n):
            raise ValueError(f"blas_gemm: cannot add {a.shape} @ {b.shape} into {c.shape}")
        lda, ldb, ldc = leading(a), leading(b), leading(c)
        if m == 0 or n == 0:
            return
        gemm(
            _ROW_MAJOR,
            _NO_TRANS,
            _NO_TRANS,
            m,
            n,
            k,
            1.0,
            a.ctypes.data,
            lda,
            b.ctypes.data,
            ldb,
            beta,
            c.ctypes.data,
            ldc,
        )

    return run


def _works(routine: Gemm, dtype: np.dtype) -> bool:
    """One small product with strided rows, compared with ``np.matmul``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 9))[:, 1:6].astype(dtype)
    b = rng.standard_normal((5, 11)).astype(dtype)[:, 2:9]
    c = rng.standard_normal((3, 12)).astype(dtype)[:, :7]
    want = a @ b + c
    try:
        routine(a, b, c, 1.0)
    except (OSError, ValueError, ctypes.ArgumentError):
        return False
    return bool(np.allclose(c, want, rtol=1e-5, atol=1e-5))
