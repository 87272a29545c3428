"""Compiled (numba) kernels; imported only through :mod:`convscope.ops.jit`.

``cache=True`` stores the machine code beside this file (or in ``NUMBA_CACHE_DIR``), so only
the first process on a machine pays for compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def wide_taps(
    planes: np.ndarray,
    tap_phase: np.ndarray,
    tap_offset: np.ndarray,
    weights: np.ndarray,
    acc: np.ndarray,
    wide: int,
) -> None:  # pragma: no cover - compiled
    """Depthwise multiply-accumulate over flat "wide rows", one (sample, channel) per job.

    ``planes`` (phases, nb, cb, plane), ``weights`` (cb, mult, taps), ``acc``
    (nb, cb, mult, >= wide): ``acc[n, c, m, p] = sum_t weights[c, m, t] *
    planes[tap_phase[t], n, c, tap_offset[t] + p]`` for ``p < wide``, taps added in order.
    """
    nb, cb, mult = acc.shape[:3]
    taps = tap_phase.shape[0]
    for job in prange(nb * cb):
        n = job // cb
        c = job % cb
        for m in range(mult):
            out = acc[n, c, m, :wide]
            out[:] = 0
            for t in range(taps):
                w = weights[c, m, t]
                # a slice starting at the offset: indices from range() are provably
                # non-negative, so the loop has no wrap-around branch and vectorises
                src = planes[tap_phase[t], n, c, tap_offset[t] : tap_offset[t] + wide]
                for p in range(wide):
                    out[p] += w * src[p]
