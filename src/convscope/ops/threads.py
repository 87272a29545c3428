"""Threads: how many the engine uses, for BLAS and for its own memory-bound steps.

The count comes from :func:`set_num_threads`, else the first positive integer among the
environment variables ``CONVSCOPE_NUM_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, else the CPUs this process may run on.
BLAS (the GEMMs) is set through ``threadpoolctl``; copies, transforms and depthwise passes
are shared out over a pool of Python threads (NumPy releases the GIL inside them).

>>> import convscope as cs
>>> with cs.num_threads(1):
...     cs.get_num_threads()
1
>>> parallel_map(lambda i: i * i, range(4))
[0, 1, 4, 9]
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

ENV_VARS = ("CONVSCOPE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

T = TypeVar("T")
_threads: int | None = None
_pool: Any = None
_pool_size = 0
_blas_applied: int | None = None
_blas_libraries: list[Any] | None = None
_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved: list[tuple[Any, int]] = []
_blas_modules = 0  # len(sys.modules) at the last lookup of the BLAS libraries
# set in a thread while it runs one share of a parallel_map: nested calls run inline there
_sharing = threading.local()


def _from_environment() -> int:
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads convscope uses (BLAS and its own pool); 1 inside one share of a
    parallel step, whose nested steps run in that share's thread (PyTorch, too, answers 1
    inside a parallel region)."""
    return 1 if getattr(_sharing, "active", False) else _configured()


def _configured() -> int:
    """The count set by :func:`set_num_threads` or the environment (shares or not)."""
    global _threads
    if _threads is None:
        _threads = _from_environment()
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for BLAS and for convscope's own parallel steps.

    Like ``torch.set_num_threads``: ``n`` must be a positive integer (``RuntimeError``
    otherwise, as PyTorch raises).
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, but got {n!r}")
    _threads = n
    _apply_to_blas()


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """Temporarily use ``n`` threads."""
    previous = _configured()
    set_num_threads(n)
    try:
        yield n
    finally:
        set_num_threads(previous)


def _apply_to_blas() -> None:
    """Make BLAS use :func:`get_num_threads` threads (once per change; needs threadpoolctl)."""
    global _blas_applied
    wanted = _configured()
    if _blas_applied == wanted:
        return
    _blas_applied = wanted
    # the cached controllers: threadpoolctl.threadpool_limits scans the loaded libraries on
    # every call, which made ``with cs.num_threads(1):`` around one small layer cost 0.8 ms
    # (without threadpoolctl BLAS keeps its own setting; its environment variables apply)
    for library in _blas():
        library.set_num_threads(wanted)


def ensure_blas_threads() -> None:
    """Called before GEMM-heavy work: apply the thread count to BLAS if it was never applied
    (so ``CONVSCOPE_NUM_THREADS`` reaches BLAS without slowing ``import convscope``)."""
    if _blas_applied is None and (_threads is not None or os.environ.get(ENV_VARS[0])):
        _apply_to_blas()


def _executor() -> Any:
    global _pool, _pool_size
    size = get_num_threads()
    if _pool is None or _pool_size != size:
        from concurrent.futures import ThreadPoolExecutor

        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(size, thread_name_prefix="convscope")
        _pool_size = size
    return _pool


def parallel_map(fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """``[fn(item) for item in items]`` on the thread pool (inline with one thread or item).

    Exceptions propagate; results keep the order of ``items``.
    """
    items = list(items)
    if get_num_threads() == 1 or len(items) <= 1 or sharing():
        return [fn(item) for item in items]
    pool = _executor()
    futures = [pool.submit(_share, fn, item, len(items)) for item in items[1:]]
    first = _share(fn, items[0], len(items))  # the calling thread works too
    return [first, *(future.result() for future in futures)]


def sharing() -> bool:
    """True inside one share of a :func:`parallel_map` (nested parallel steps run inline)."""
    return getattr(_sharing, "active", False)


def concurrent_shares() -> int:
    """How many shares of a :func:`parallel_map` run side by side, this one included, when
    called inside one (else 1): working sets sized for one thread divide by it, so that the
    process holds no more at once than one unshared call would."""
    return getattr(_sharing, "siblings", 1) if sharing() else 1


def _share(fn: Callable[[Any], T], item: Any, siblings: int) -> T:
    """``fn(item)`` as one share of a parallel_map: parallel steps inside it run inline (the
    pool's threads are busy with the other shares)."""
    _sharing.active, _sharing.siblings = True, siblings
    try:
        return fn(item)
    finally:
        _sharing.active = False


def _blas() -> list[Any]:
    """threadpoolctl's controllers of the loaded BLAS libraries (none without threadpoolctl),
    looked up again whenever modules were imported since the last lookup (one may have
    loaded another BLAS, e.g. SciPy's)."""
    global _blas_libraries, _blas_modules
    if _blas_libraries is None or len(sys.modules) != _blas_modules:
        _blas_modules = len(sys.modules)
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_libraries = []
        else:
            _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        _blas_modules = len(sys.modules)  # the lookup itself may import
    return _blas_libraries


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS on ``n`` threads inside the block (then back to what it had): for GEMMs that
    convscope's own threads run side by side, each on one core.  Needs threadpoolctl; without
    it BLAS keeps its setting (:func:`blas_is_adjustable` says which).  About 8 us a block.

    >>> with blas_threads(1):
    ...     pass
    """
    global _blas_depth, _blas_saved
    libraries = _blas()
    with _blas_lock:  # blocks may overlap in several threads: the first in saves, the last restores
        if _blas_depth == 0:
            _blas_saved = [(library, library.num_threads) for library in libraries]
        _blas_depth += 1
        for library in libraries:
            library.set_num_threads(n)
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for library, count in _blas_saved:
                    library.set_num_threads(count)


def blas_is_adjustable() -> bool:
    """True when :func:`blas_threads` can change BLAS's thread count."""
    return bool(_blas())


def share_out(fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    """``fn(share)`` for contiguous shares of ``items``, one per thread, each thread's BLAS
    on one core (for work units that each run their own GEMMs)."""
    shares = [items[part] for part in split(len(items), get_num_threads())]
    with blas_threads(1):
        parallel_map(fn, shares)


def split(length: int, parts: int, minimum: int = 1) -> list[slice]:
    """``length`` cut into at most ``parts`` contiguous slices of at least ``minimum``.

    >>> split(10, 3)
    [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    parts = max(1, min(parts, length // max(minimum, 1)))
    bounds = [length * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def parallel_copy(dest: Any, source: Any, axis: int = 0, min_bytes: int = 1 << 20) -> None:
    """``np.copyto(dest, source)`` split along ``axis`` over the threads when it is large."""
    import numpy as np

    if dest.nbytes < min_bytes or get_num_threads() == 1 or not dest.ndim:
        np.copyto(dest, source)
        return
    slices = split(dest.shape[axis], get_num_threads())
    if len(slices) == 1:
        np.copyto(dest, source)
        return
    lead = (slice(None),) * axis

    def copy(part: slice) -> None:
        np.copyto(dest[(*lead, part)], source[(*lead, part)])

    parallel_map(copy, slices)
