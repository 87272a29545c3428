"""Timing libraries against each other in one process: interleaved calls, each library's timed
call preceded by a quiet gap and (for short calls) an untimed call of its own.

Why the gap: after a call, a library's idle worker threads go on spinning on the cores for a
while (OpenBLAS's for about 0.1 s, 2^28 cycles; OpenMP's for its spin count), so the *next*
library's call would share the cores with them.  Without the gap, torch's times in
``bench_models.py`` ran after convscope's GEMMs and were inflated by its OpenBLAS threads (a
Conv2d(64, 32, 3) on 256x256: torch 39 ms right after convscope, 9-12 ms after a quiet gap).

>>> medians = interleaved([lambda: None, lambda: sum(range(100))], repeats=3, gap=0.0)
>>> len(medians)
2
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

QUIET_GAP_S = 0.25
"""Seconds of sleep before each timed call (longer than OpenBLAS's default spin, ~0.1 s)."""

SHORT_S = 0.25
"""Calls shorter than this get an untimed call of the same function right before the timed
one (after the gap): the library's own threads and caches are warm when timing starts."""


def interleaved(
    fns: Sequence[Callable[[], Any]], repeats: int, gap: float = QUIET_GAP_S, warmups: int = 1
) -> list[float]:
    """Median seconds of each function over ``repeats`` timed calls, the functions called in
    rotating order after ``warmups`` warm-up calls each."""
    for fn in fns:
        for _ in range(warmups):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        order = list(range(len(fns)))
        order = order[i % len(order) :] + order[: i % len(order)]
        for k in order:
            if gap:
                time.sleep(gap)
            if not times[k] or statistics.median(times[k]) < SHORT_S:
                fns[k]()
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
