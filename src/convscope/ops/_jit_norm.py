"""Compiled (numba) kernels of the normalisation backward; imported only when
:func:`convscope.ops.jit.kernels` says numba works.

Rows are the ``(a, c)`` rows of an ``(A, C, S)`` array flattened to ``(A * C, S)``; one
parallel job per row.  The sums add short chunks in the input dtype and the chunks in float64
(the NumPy path sums each row in the input dtype); the combination adds in the NumPy path's
order, so both paths round alike.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: elements summed in the input dtype before the partial sums join the float64 totals
CHUNK = 256


def _row_grad_sums(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    total: np.ndarray,
    dot: np.ndarray,
    zero: float,
) -> None:  # pragma: no cover - compiled
    """``total[r] = sum(g[r])`` and ``dot[r] = sum(g[r] * (x[r] - centre[r]))``: chunks of
    :data:`CHUNK` elements summed (vectorised) in the input dtype, whose ``zero`` is given,
    the chunks' sums added in float64; the deviation rounded as NumPy's subtraction rounds
    it."""
    rows, count = g.shape
    for r in prange(rows):  # range when compiled serially
        c = centre[r]
        s = 0.0
        d = 0.0
        for begin in range(0, count, CHUNK):
            s_part = zero
            d_part = zero
            for i in range(begin, min(begin + CHUNK, count)):
                h = g[r, i]
                s_part += h
                d_part += h * (x[r, i] - c)
            s += s_part
            d += d_part
        total[r] = s
        dot[r] = d


# parallel, and serial for one thread or small arrays (``jit.run``'s serial twin would drop
# the reassociation that lets the chunk sums vectorise)
row_grad_sums = njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})(_row_grad_sums)
row_grad_sums_serial = njit(cache=True, nogil=True, fastmath={"reassoc"})(_row_grad_sums)


@njit(parallel=True, cache=True, nogil=True)
def row_combine(
    g: np.ndarray,
    x: np.ndarray,
    centre: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out[r] = (x[r] - centre[r]) * b[r] + g[r] * a[r] + c[r]``, added left to right."""
    rows, count = g.shape
    for r in prange(rows):
        ce, ar, br, cr = centre[r], a[r], b[r], c[r]
        for i in range(count):
            out[r, i] = ((x[r, i] - ce) * br + g[r, i] * ar) + cr
