"""Optional compiled kernels (numba) for memory-bound loops NumPy cannot fuse.

Used when numba is installed (``pip install "convscope[fast]"``) and ``BACKEND`` is
``"auto"`` or ``"numba"``; ``"numpy"`` (or ``CONVSCOPE_JIT=0``) keeps the pure NumPy code,
which stays the reference and is tested alongside.  Compiled code is cached on disk, so
only the first call on a machine compiles (:func:`compile_seconds` tells how long it took).

>>> BACKEND in ("auto", "numpy", "numba")
True
"""

from __future__ import annotations

import os
import threading
import time
from types import ModuleType

BACKEND = "numpy" if os.environ.get("CONVSCOPE_JIT", "").strip() == "0" else "auto"

#: Kernels whose largest array has fewer elements than this run on one thread: waking a
#: thread pool costs more than such a pass (a resnet18 forward on a 32x32 input runs 30%
#: faster serial).
SERIAL_BELOW = 1 << 15

_kernels: ModuleType | None = None
_failed = False
_compile_seconds: dict[str, float] = {}
# numba's default thread pool ("workqueue") must not be entered by two threads at once
_launch = threading.Lock()


def kernels() -> ModuleType | None:
    """The compiled-kernel module, or ``None`` when the NumPy path should run."""
    global _kernels, _failed
    if BACKEND == "numpy" or _failed:
        return None
    if _kernels is None:
        try:
            _prefer_workqueue()
            from . import _jit_kernels
        except (ImportError, RuntimeError, OSError) as error:
            # not installed, or numba cannot work here (e.g. no writable cache folder)
            if BACKEND == "numba":
                raise ImportError(
                    f"the 'numba' backend is unavailable ({error}); pip install \"convscope[fast]\""
                ) from None
            _failed = True
            return None
        _kernels = _jit_kernels
    return _kernels


def _prefer_workqueue() -> None:
    """Use numba's own thread pool rather than OpenMP, unless the user chose a layer.

    numba picks OpenMP (libgomp) when it can, and libgomp's idle workers spin: between two
    kernels they hold the cores that OpenBLAS's GEMM threads (and torch's, in the same
    process) need.  Measured on the 2-core machine: a resnet18 forward on a 1x3x32x32 input
    took 456 ms with OpenMP against 16 ms with the workqueue pool.  The layer is fixed at
    numba's first parallel launch, so this must run before it.
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba

    numba.config.THREADING_LAYER = "workqueue"


def _threads_for(args: tuple[object, ...]) -> int:
    import numba

    from .threads import get_num_threads

    largest = max((getattr(a, "size", 0) for a in args), default=0)
    if largest < SERIAL_BELOW:
        return 1
    return min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)


def call(name: str, *args: object) -> None:
    """Run kernel ``name`` on as many threads as convscope uses (one for small arrays, see
    :data:`SERIAL_BELOW`); the first call of each signature compiles (or loads the cached
    code), which is timed."""
    import numba

    numba.set_num_threads(_threads_for(args))
    function = getattr(kernels(), name)
    kinds = ", ".join(str(a.dtype) if hasattr(a, "dtype") else type(a).__name__ for a in args)
    signature = f"{name}({kinds})"
    with _launch:
        if signature in _compile_seconds:
            function(*args)
            return
        start = time.perf_counter()
        function(*args)
        _compile_seconds[signature] = time.perf_counter() - start


def compile_seconds() -> dict[str, float]:
    """Seconds the first call of each kernel signature took in this process (compiling or
    loading from the cache, plus one run)."""
    return dict(_compile_seconds)
