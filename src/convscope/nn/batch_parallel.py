"""Batch-parallel inference: shares of a batch run through a network on separate threads.

At two threads, an eval-mode forward of a whole network under ``no_grad`` spends much of its
time in steps that use one core (NumPy's elementwise passes, copies, compiled kernels that run
serially while OpenBLAS's idle worker spins on the other core).  When every module of the
network computes each sample from that sample alone, the batch can instead be cut into one
share per thread, each share run through the whole network on its own thread with BLAS on one
core, and the outputs joined: one hand-off per forward instead of one per operation.  Measured
on the 2-core machine at batch 8: ResNet-18 222 -> 164 ms, MobileNetV2 105 -> 78 ms,
EfficientNet-B0 200 -> 128 ms, ConvNeXt-Tiny 660 -> 520 ms.

A network (a module with sub-modules; a single layer keeps its per-operation threads) is
split only when nothing could tell the difference (:func:`splittable`):

- gradients are not being recorded for it and every module is in eval mode;
- every module declares ``independent_samples`` on the class that defines its ``forward``
  (all of ``convscope.nn``'s layers but the losses, with conditions where an argument decides:
  ``Softmax(dim=0)``, ``Flatten(0)`` or a ``BatchNorm`` without running statistics do not), and
  none has hooks or an instance-level ``forward``;
- it has convolutions, all with the same number of spatial dimensions ``N``, and the input
  has ``N + 2`` (a batch dimension: an unbatched input is never cut along its channels);
- the batch has at least as many samples as convscope has threads, and each share at least
  :data:`SPLIT_FROM_ELEMENTS` input values;
- and it is faster: for each input shape the first four calls run unsplit, the next four
  split (one warm-up call each way, then three timed), and the way with the shorter best
  time is kept (a small network on a small input loses: its threads wait on each other for
  Python's interpreter lock).

``CONVSCOPE_BATCH_PARALLEL=off`` (or ``on``: split whenever allowed, no timing) overrides the
choice.  A user's own network opts in by saying so on its class
(``independent_samples = True``); a subclass that overrides ``forward`` must say so again.
If a share raises, the whole batch is run again unsplit, so that the error names the real
input.  Results agree with the unsplit run within float rounding (BLAS on one thread may
round a few sums differently).

>>> import convscope as cs
>>> import convscope.nn as nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)).eval()
>>> with cs.no_grad():
...     splittable(net, cs.zeros(8, 3, 64, 64), threads=2), splittable(net, cs.zeros(3, 64, 64))
(True, False)
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
import weakref
from typing import Any

import numpy as np

from ..autograd.engine import is_grad_enabled, no_grad
from ..ops import allocator
from ..ops import threads as _threads
from ..tensor import Tensor
from .conv import _ConvNd
from .module import Module

#: "auto" (time both ways, keep the faster), "on" (split whenever :func:`splittable`) or
#: "off"; from the environment variable ``CONVSCOPE_BATCH_PARALLEL``
MODE = os.environ.get("CONVSCOPE_BATCH_PARALLEL", "auto").strip().lower() or "auto"
if MODE not in ("auto", "on", "off"):
    warnings.warn(
        f"CONVSCOPE_BATCH_PARALLEL should be auto, on or off, not {MODE!r}: using auto",
        stacklevel=1,
    )
    MODE = "auto"
#: the fewest input values per share worth a trial (below, the hand-off always costs more)
SPLIT_FROM_ELEMENTS = 1 << 14
#: a split is kept when its timed call took less than this fraction of the unsplit one
KEEP_SPLIT_BELOW = 0.9
#: timed calls of each way before the choice (after one warm-up call each)
TIMED_CALLS = 3
#: shapes remembered per network (the oldest choice is dropped first)
MAX_TRIALS_PER_MODULE = 32

_declared_by_class: dict[type, bool] = {}


def _declares(cls: type) -> bool:
    """``independent_samples`` is set on the class that defines ``forward`` or below it."""
    known = _declared_by_class.get(cls)
    if known is None:
        mro = cls.__mro__
        forward_owner = next(c for c in mro if "forward" in c.__dict__)
        flag_owner = next(c for c in mro if "independent_samples" in c.__dict__)
        known = issubclass(flag_owner, forward_owner)
        _declared_by_class[cls] = known
    return known


def _conv_rank(module: Module) -> int | None:
    return len(module.kernel_size) if isinstance(module, _ConvNd) else None


def splittable(module: Module, x: Any, threads: int | None = None) -> bool:
    """Whether ``module(x)`` may run as shares of the batch on ``threads`` threads
    (convscope's thread count by default)."""
    count = threads or _threads.get_num_threads()
    if not module._modules or count < 2 or not isinstance(x, Tensor):
        return False
    if x.ndim < 3 or x.shape[0] < count:
        return False
    if x.data.size // count < SPLIT_FROM_ELEMENTS:
        return False
    recording = is_grad_enabled()  # a graph would be recorded if anything requires grad
    if recording and x.requires_grad:
        return False
    ranks = set()
    for child in module.modules():
        if (
            child.training
            or child._forward_hooks
            or child._forward_pre_hooks
            or "forward" in child.__dict__
            or not _declares(type(child))
            or not child.independent_samples
        ):
            return False
        if recording and any(p.requires_grad for p in child.parameters(recurse=False)):
            return False
        rank = _conv_rank(child)
        if rank is not None:
            ranks.add(rank)
    return len(ranks) == 1 and x.ndim == ranks.pop() + 2


class _Trial:
    """The split-or-not choice for one (network, input shape, dtype, threads): the first
    calls run unsplit, the next as many split (the first of each way warms it up: caches,
    compiled code), then the way with the shorter best time is kept.  Each way runs in a
    block of its own because a split call right after an unsplit one shares the cores with
    OpenBLAS's worker, which spins for about 0.1 s after a GEMM."""

    __slots__ = ("best", "calls", "split")

    def __init__(self) -> None:
        self.calls = 0
        self.best = [math.inf, math.inf]  # unsplit, split
        self.split: bool | None = None

    def next_way(self) -> bool:
        return self.split if self.split is not None else self.calls > TIMED_CALLS

    def record(self, split: bool, seconds: float) -> None:
        if self.calls % (TIMED_CALLS + 1):  # not a way's warm-up call
            self.best[split] = min(self.best[split], seconds)
        self.calls += 1
        if self.calls == 2 * (TIMED_CALLS + 1):
            self.split = self.best[1] < KEEP_SPLIT_BELOW * self.best[0]


_trials: weakref.WeakKeyDictionary[Module, dict[tuple, _Trial]] = weakref.WeakKeyDictionary()
_inside = threading.local()


def maybe_split(module: Module, args: tuple, kwargs: dict) -> Any:
    """``module``'s output when :func:`splittable` (computed in shares of the batch when that
    was measured faster), else ``NotImplemented``: the caller then runs it as usual."""
    if MODE == "off" or getattr(_inside, "active", False) or kwargs or len(args) != 1:
        return NotImplemented
    x = args[0]
    if not splittable(module, x):
        return NotImplemented
    trial = _trial(module, x)
    split = MODE == "on" or trial.next_way()
    if split and trial.calls == TIMED_CALLS + 1 and MODE == "auto":
        # the shares' threads allocate from arenas of their own: what the unsplit calls freed
        # would stay unused beside them (ResNet-18 at batch 8: 63 instead of 42 MiB added)
        allocator.release()
    start = time.perf_counter()
    _inside.active = True  # the containers inside run as this one chose
    try:
        output = _run_split(module, x) if split else module.forward(x)
    finally:
        _inside.active = False
    if output is NotImplemented:  # a share failed, or gave no batched output
        trial.split = False
        return output
    if trial.split is None and MODE == "auto":
        trial.record(split, time.perf_counter() - start)
    return output


def _trial(module: Module, x: Tensor) -> _Trial:
    shapes = _trials.setdefault(module, {})
    key = (x.shape, x.dtype, _threads.get_num_threads())
    trial = shapes.get(key)
    if trial is None:
        if len(shapes) >= MAX_TRIALS_PER_MODULE:
            shapes.pop(next(iter(shapes)))
        trial = shapes[key] = _Trial()
    return trial


def _run_split(module: Module, x: Tensor) -> Any:
    shares = _threads.split(x.shape[0], _threads.get_num_threads())

    def run_share(part: slice) -> Any:
        with no_grad():
            return module(x[part])

    try:
        with _threads.blas_threads(1):
            outputs = _threads.parallel_map(run_share, shares)
    except Exception:
        return NotImplemented  # run unsplit: its error names the whole input
    joined = _join(outputs, [part.stop - part.start for part in shares])
    return NotImplemented if joined is None else joined


def _join(outputs: list[Any], sizes: list[int]) -> Any:
    """The shares' outputs joined along the batch (None when they are not batched tensors)."""
    first = outputs[0]
    if isinstance(first, Tensor):
        pairs = zip(outputs, sizes, strict=True)
        if not all(isinstance(o, Tensor) and o.ndim and o.shape[0] == n for o, n in pairs):
            return None
        return Tensor(np.concatenate([o.data for o in outputs]))
    if type(first) in (tuple, list) and all(len(o) == len(first) for o in outputs):
        items = [_join([o[i] for o in outputs], sizes) for i in range(len(first))]
        if any(item is None for item in items):
            return None
        return type(first)(items)
    return None
