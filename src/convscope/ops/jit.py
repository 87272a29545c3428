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
import types
from types import ModuleType
from typing import Any

import numpy as np

from .threads import get_num_threads

BACKEND = "numpy" if os.environ.get("CONVSCOPE_JIT", "").strip() == "0" else "auto"

#: Kernels whose largest array has fewer elements than this run on one thread: waking a
#: thread pool costs more than such a pass (a resnet18 forward on a 32x32 input runs 30%
#: faster serial).
SERIAL_BELOW = 1 << 16

#: With this many threads or fewer every kernel runs serially: between GEMMs OpenBLAS's idle
#: worker spins on the other core, and a parallel kernel waits for it.  Measured on the
#: 2-core machine, batch 8, 2 threads, whole networks: serial kernels 96 ms against
#: parallel 123 ms (MobileNetV2), 213 against 240 ms (EfficientNet-B0), 215 against 220 ms
#: (ResNet-18).
SERIAL_UP_TO_THREADS = 2

#: ... unless the kernel's largest array has at least this many elements: such calls (a
#: training step's whole batch; inference at batch 8 runs in batch-parallel shares, one
#: thread each) gained more from the second core than they lost waiting for OpenBLAS's
#: worker.  In-process A/B, 2 threads, medians: MobileNetV2 SGD step at batch 8 699 -> 558
#: ms; from 4M elements up, no gain (649 -> 646); ResNet-18's step, and inference at batch 1
#: of ResNet-18, MobileNetV2, EfficientNet-B0, ConvNeXt-Tiny and the U-Net, within 3%.
PARALLEL_FROM = 1 << 20

_kernels: ModuleType | None = None
_failed = False
_compile_seconds: dict[str, float] = {}
_twins: dict[Any, Any] = {}
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


def _serial_twin(function: Any) -> Any:
    """The same kernel compiled without ``parallel=True`` (its other options kept): it runs in
    the calling thread (``prange`` becomes ``range``), where a parallel kernel, even on one
    thread, hands the work to a pool thread and waits for it (under load, that hand-over
    alone took milliseconds)."""
    twin = _twins.get(function)
    if twin is None:
        import numba

        source = function.py_func
        copy = types.FunctionType(
            source.__code__,
            source.__globals__,
            source.__name__ + "_serial",
            source.__defaults__,
            source.__closure__,
        )
        copy.__qualname__ = source.__qualname__ + "_serial"  # its own on-disk cache entry
        copy.__module__ = source.__module__
        copy.__doc__ = source.__doc__
        # the same options (fastmath, error model) as the parallel kernel, without parallel
        options = {
            k: v for k, v in function.targetoptions.items() if k not in ("parallel", "nopython")
        }
        twin = numba.njit(cache=True, **options)(copy)
        _twins[function] = twin
    return twin


def run(
    function: Any, *args: Any, parallel_from: int | None = None, parallel: bool = False
) -> None:
    """Run the compiled kernel ``function`` (a numba dispatcher) on as many threads as
    convscope uses, or serially in this thread when its largest array has fewer than
    :data:`SERIAL_BELOW` elements; the first call of each signature compiles (or loads the
    cached code), which is timed (:func:`compile_seconds`).  With at most
    :data:`SERIAL_UP_TO_THREADS` threads kernels run serially in the calling thread unless
    they have :data:`PARALLEL_FROM` elements (or ``parallel_from``, for kernels that run
    between GEMMs and measured slower in parallel there).  ``parallel``: run on every thread
    whatever the arrays' sizes (a compute-bound call the caller has measured)."""
    largest = 0
    for a in args:
        if type(a) is np.ndarray and a.size > largest:
            largest = a.size
    workers = get_num_threads()  # 1 inside a share of a parallel step (batch-parallel)
    threshold = PARALLEL_FROM if parallel_from is None else parallel_from
    few_threads = workers <= SERIAL_UP_TO_THREADS and largest < threshold
    serial = workers == 1 or (not parallel and (largest < SERIAL_BELOW or few_threads))
    if serial:
        function = _serial_twin(function)
    known = len(function.overloads)  # a new entry after the call: it compiled (or loaded)
    start = time.perf_counter()
    if serial:
        function(*args)
    else:
        _launch_parallel(function, args)
    if len(function.overloads) != known:
        kinds = ", ".join(str(a.dtype) if hasattr(a, "dtype") else type(a).__name__ for a in args)
        name = function.py_func.__name__.removesuffix("_serial")
        _compile_seconds[f"{name}({kinds})"] = time.perf_counter() - start


def _launch_parallel(function: Any, args: tuple[Any, ...]) -> None:
    import numba

    with _launch:
        numba.set_num_threads(min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        function(*args)


def call(name: str, *args: Any) -> None:
    """:func:`run` the kernel ``name`` of the compiled-kernel module (:func:`kernels`)."""
    run(getattr(kernels(), name), *args)


def compile_seconds() -> dict[str, float]:
    """Seconds the first call of each kernel signature took in this process (compiling or
    loading from the cache, plus one run)."""
    return dict(_compile_seconds)
