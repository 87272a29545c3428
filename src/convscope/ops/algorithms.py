"""Which algorithm computes a convolution: the shape heuristic, a forced choice, or autotuning.

Every algorithm computes the same primitive (``ops.conv.conv_general``) to the same
tolerances; they differ in speed.  By default :func:`convscope.ops.conv.select_algorithm`
picks from the shapes.  A user can instead

* force one algorithm wherever it applies: :func:`set_conv_algorithm` / :func:`conv_algorithm`
  (or ``CONVSCOPE_CONV_ALGORITHM``); shapes it cannot handle keep the heuristic's choice;
* autotune: :func:`set_autotune` (or ``CONVSCOPE_AUTOTUNE=1``) times every applicable
  algorithm on the first call of each shape and reuses the fastest, cached in memory and,
  with ``cache_file`` (or ``CONVSCOPE_AUTOTUNE_CACHE``), in a JSON file across processes.

:func:`record_conv_algorithms` tells which algorithm each call used.

>>> import numpy as np, convscope as cs
>>> import convscope.nn.functional as F
>>> x, w = np.ones((1, 8, 6, 6)), np.ones((8, 1, 3, 3))
>>> with cs.record_conv_algorithms() as used, cs.conv_algorithm("unfold"):
...     _ = F.conv2d(x, w, groups=8)
>>> [name for name, _ in used]
['unfold']
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .threads import get_num_threads
from .tiling import ConvGeometry

Algorithm = Callable[[np.ndarray, np.ndarray, ConvGeometry, int, np.ndarray, int], None]


def _floating_only(name: str) -> Callable[[ConvGeometry, int, Any], str | None]:
    def rule(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
        if np.dtype(dtype).kind != "f":
            return f"{name} is not exact for {np.dtype(dtype)} inputs"
        return None

    return rule


def _stride_one(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    if any(s != 1 for s in geom.stride):
        return "fold is for stride-1 calls (transposed convolutions and input gradients)"
    return None


def _shifted_shape(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    if any(s != 1 for s in geom.stride) or any(i != 1 for i in geom.input_dilation):
        return "shifted is for stride-1 calls without zero insertion (input dilation)"
    return None


def _depthwise_grouping(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    if groups != geom.input_shape[1]:
        from .jit import kernels

        if kernels() is None:
            return "depthwise needs groups == in_channels (or numba installed)"
    return None


def _winograd_shape(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    reason = _floating_only("winograd")(geom, groups, dtype)
    if reason is None and not (
        len(geom.kernel_size) >= 2
        and geom.kernel_size[-2:] == (3, 3)
        and geom.stride[-2:] == geom.dilation[-2:] == (1, 1)
        and all(i == 1 for i in geom.input_dilation)
    ):
        reason = (
            "winograd is for kernels 3x3 over the last two dimensions, with stride 1 and "
            "dilation 1 there (2-D and 3-D)"
        )
    return reason


def _blocked_shape(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    from . import blocked

    return blocked.unsupported(geom, groups, dtype)


@dataclass(frozen=True)
class Spec:
    """Everything the engine knows about one algorithm, in one place: adding an algorithm is
    one module with ``run`` (and optionally ``weight_gradient``) plus one entry here."""

    module: str  #: module of ``convscope.ops`` whose ``run`` implements it
    unsupported: Callable[[ConvGeometry, int, Any], str | None] | None = None
    #: transforms the data (FFT, Winograd): one Inf/NaN spreads over a tile or a channel, so
    #: calls with non-finite values go to a tap-by-tap algorithm instead
    spreads_non_finite: bool = False
    #: timed by autotuning ('direct' is the slow reference, 'fold' only pays with zero insertion)
    tunable: bool = True
    #: name of the module's weight-gradient function, when it has one
    weight_gradient: str | None = None


REGISTRY: dict[str, Spec] = {
    "unfold": Spec("unfold_gemm", weight_gradient="weight_gradient"),
    "direct": Spec("direct", tunable=False),
    "fft": Spec("fft", _floating_only("fft"), spreads_non_finite=True),
    "depthwise": Spec("depthwise", _depthwise_grouping, weight_gradient="weight_gradient"),
    "winograd": Spec("winograd", _winograd_shape, spreads_non_finite=True),
    "fold": Spec("fold", _stride_one, tunable=False),
    "shifted": Spec("shifted_gemm", _shifted_shape, weight_gradient="weight_gradient"),
    "blocked": Spec("blocked", _blocked_shape, weight_gradient="weight_gradient"),
}
#: algorithm name -> module of ``convscope.ops`` whose ``run`` implements it
MODULES = {name: spec.module for name, spec in REGISTRY.items()}
NAMES = tuple(REGISTRY)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_forced: str | None = os.environ.get("CONVSCOPE_CONV_ALGORITHM") or None
_autotune = _env_flag("CONVSCOPE_AUTOTUNE")
_cache_file: str | None = os.environ.get("CONVSCOPE_AUTOTUNE_CACHE") or None
_cache: dict[str, str] = {}
_cache_loaded = False
_recorders: list[list[tuple[str, ConvGeometry]]] = []


def _check_name(name: str) -> str:
    if name not in REGISTRY:
        raise ValueError(f"unknown convolution algorithm {name!r}; choose from {sorted(MODULES)}")
    return name


def implementation(name: str) -> Algorithm:
    """The function running algorithm ``name`` (its module is imported on first use)."""
    run = _implementations.get(name)
    if run is None:
        run = importlib.import_module(f"convscope.ops.{REGISTRY[_check_name(name)].module}").run
        _implementations[name] = run
    return run


_implementations: dict[str, Algorithm] = {}


def unsupported(name: str, geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    """Why algorithm ``name`` cannot compute this call, or ``None`` if it can."""
    rule = REGISTRY[_check_name(name)].unsupported
    return None if rule is None else rule(geom, groups, dtype)


def spreads_non_finite(name: str) -> bool:
    """Whether algorithm ``name`` would smear an Inf/NaN beyond the windows that read it."""
    return REGISTRY[_check_name(name)].spreads_non_finite


def weight_gradient(name: str) -> Callable[..., np.ndarray] | None:
    """Algorithm ``name``'s own weight-gradient function ``(x, grad, geom, groups, budget)``,
    or ``None`` when its weight gradient is computed as a convolution of the primitive."""
    spec = REGISTRY[_check_name(name)]
    if spec.weight_gradient is None:
        return None
    return getattr(importlib.import_module(f"convscope.ops.{spec.module}"), spec.weight_gradient)


def candidates(
    geom: ConvGeometry, groups: int, dtype: Any, out_channels: int | None = None
) -> list[str]:
    """The algorithms autotuning compares for a call without zero insertion ('direct', the
    reference, is too slow to compete; 'fold' only pays off with zero insertion; the
    compiled tap-by-tap kernel only for depthwise layers or few channels per group)."""
    channels = geom.input_shape[1]
    per_group = (channels // groups) * ((out_channels or channels) // groups)
    names = []
    for name in NAMES:
        if not REGISTRY[name].tunable or unsupported(name, geom, groups, dtype) is not None:
            continue
        if name == "depthwise" and groups != channels and per_group > 64:
            continue
        names.append(name)
    return names


def set_conv_algorithm(name: str | None) -> None:
    """Force algorithm ``name`` for every convolution it can compute (``None``: heuristic).

    Names: ``'unfold'``, ``'direct'``, ``'fft'``, ``'depthwise'``, ``'winograd'``, ``'fold'``,
    ``'shifted'``, ``'blocked'``.
    """
    global _forced
    _forced = None if name is None else _check_name(name)


def get_conv_algorithm() -> str | None:
    """The forced algorithm, or ``None`` when the heuristic (or autotuning) chooses."""
    return _forced


@contextlib.contextmanager
def conv_algorithm(name: str | None) -> Iterator[str | None]:
    """Temporarily force algorithm ``name`` (see :func:`set_conv_algorithm`)."""
    previous = _forced
    set_conv_algorithm(name)
    try:
        yield name
    finally:
        set_conv_algorithm(previous)


def forced_for(geom: ConvGeometry, groups: int, dtype: Any) -> str | None:
    """The forced algorithm if one is set and it can compute this call."""
    if _forced is not None and unsupported(_forced, geom, groups, dtype) is None:
        return _forced
    return None


def set_autotune(enabled: bool, cache_file: str | os.PathLike | None = None) -> None:
    """Turn autotuning on or off; ``cache_file`` (JSON) keeps the choices across processes."""
    global _autotune, _cache_file, _cache_loaded
    _autotune = bool(enabled)
    if cache_file is not None:
        _cache_file, _cache_loaded = os.fspath(cache_file), False


def get_autotune() -> bool:
    """Whether autotuning is on."""
    return _autotune


def autotune_cache() -> dict[str, str]:
    """A copy of the autotuning choices: shape key -> algorithm."""
    _load_cache()
    return dict(_cache)


def clear_autotune_cache() -> None:
    """Forget the choices in memory (the cache file, if any, is left alone)."""
    global _cache_loaded
    _cache.clear()
    _cache_loaded = True


def cache_key(geom: ConvGeometry, weight_shape: tuple, groups: int, dtype: Any, budget: int) -> str:
    return (
        f"x{tuple(geom.input_shape)} w{tuple(weight_shape)} s{geom.stride} p{geom.pads} "
        f"d{geom.dilation} i{geom.input_dilation} g{groups} {np.dtype(dtype).name} "
        f"t{get_num_threads()} b{budget}"
    )


def _load_cache() -> None:
    global _cache_loaded
    if _cache_loaded:
        return
    _cache_loaded = True
    if not _cache_file or not os.path.exists(_cache_file):
        return
    try:
        with open(_cache_file) as fh:
            stored = json.load(fh)
        entries = {str(k): str(v) for k, v in stored.items() if v in MODULES}
    except (OSError, ValueError, AttributeError) as error:
        warnings.warn(f"ignoring unreadable autotune cache {_cache_file}: {error}", stacklevel=3)
        return
    _cache.update({k: v for k, v in entries.items() if k not in _cache})


def _save_cache() -> None:
    if not _cache_file:
        return
    folder = os.path.dirname(os.path.abspath(_cache_file))
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".autotune.", suffix=".part")
        with os.fdopen(handle, "w") as fh:
            json.dump(_cache, fh, indent=1, sort_keys=True)
        os.replace(temp, _cache_file)
    except OSError as error:
        warnings.warn(f"cannot write autotune cache {_cache_file}: {error}", stacklevel=3)


def tuned(key: str, names: list[str], trial: Callable[[str], None]) -> str:
    """The cached choice for ``key``, or the fastest of ``names`` timed with ``trial``.

    Every trial computes the full result (into the caller's output), so whichever ran last
    leaves a correct answer behind.
    """
    _load_cache()
    choice = _cache.get(key)
    if choice in names:
        return choice
    timings = {}
    for name in names:
        start = time.perf_counter()
        trial(name)
        timings[name] = time.perf_counter() - start
    best = min(timings, key=timings.__getitem__)
    if len(names) > 1 and timings[best] < 0.05:  # short calls: time the two leaders again
        leaders = sorted(timings, key=timings.__getitem__)[:2]
        for name in leaders * 3:
            start = time.perf_counter()
            trial(name)
            timings[name] = min(timings[name], time.perf_counter() - start)
        best = min(leaders, key=timings.__getitem__)
    _cache[key] = best
    _save_cache()
    return best


_precision = threading.local()


def precise() -> bool:
    """True while the primitive computes values that feed a gradient (a recorded forward or a
    backward pass): algorithms then keep float32 errors at the level of PyTorch's own,
    trading some speed (Winograd takes F(2x2, 3x3) only, see ``ops.winograd``)."""
    return getattr(_precision, "on", False)


class precisely:
    """:func:`precise` is True inside the ``with`` block (in this thread); ``on=False``
    leaves it as it is.  A class rather than a generator: it wraps every primitive call."""

    __slots__ = ("before", "on")

    def __init__(self, on: bool = True) -> None:
        self.on = on

    def __enter__(self) -> None:
        self.before = precise()
        _precision.on = self.before or self.on

    def __exit__(self, *exc: object) -> None:
        _precision.on = self.before


@contextlib.contextmanager
def record_conv_algorithms() -> Iterator[list[tuple[str, ConvGeometry]]]:
    """Collect ``(algorithm, geometry)`` for every primitive call made inside the block."""
    log: list[tuple[str, ConvGeometry]] = []
    _recorders.append(log)
    try:
        yield log
    finally:
        _recorders.remove(log)


def record(name: str, geom: ConvGeometry) -> None:
    for log in _recorders:
        log.append((name, geom))
