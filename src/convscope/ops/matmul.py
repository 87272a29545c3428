"""The engine's ``np.matmul``: the operand order OpenBLAS handles best, optionally shared out
over convscope's threads with BLAS on one core in each.

A few rows times a wide matrix is computed as ``(b.T @ a.T).T`` (see :data:`FEW_ROWS`).
Sharing a big product out (a part of the stack, of the columns or of the rows per thread) is
off by default (:data:`SHARED_FROM`): on the quiet 2-core machine BLAS's own threads did
better.  One thread, or a call from inside a share, runs the product directly.

>>> import numpy as np
>>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
>>> matmul(a, b).tolist()
[[3.0, 3.0], [12.0, 12.0]]
"""

from __future__ import annotations

import math

import numpy as np

from . import algorithms, threads

SHARED_FROM = 1 << 62
"""Multiply-adds from which a product is shared out over the threads: never by default.
Switching BLAS to one thread and back around each product cost more than sharing gained on
the quiet 2-core machine (medians of whole networks at 2 threads: ConvNeXt-Tiny batch 1 100
-> 135 ms, the wav2vec2 encoder 30 -> 48 ms; measurements on a loaded machine had pointed the
other way).  Set it lower where BLAS's own threads do worse."""


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for operands of two or more dimensions, shared out over
    the threads when it is big.  Every output element is one BLAS dot product either way;
    as between BLAS's own thread counts, a few at the edges of BLAS's blocks may round
    differently (integers are exact)."""
    workers = threads.get_num_threads()
    if (
        workers == 1
        or a.ndim < 2
        or b.ndim < 2
        or threads.sharing()
        or not threads.blas_is_adjustable()
    ):
        return _product(a, b, out)
    stack = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    threshold = GRADIENT_SHARED_FROM if algorithms.precise() else SHARED_FROM
    if k != b.shape[-2] or math.prod(stack) * m * n * k < threshold:
        return _product(a, b, out)
    if out is None:
        out = np.empty((*stack, m, n), np.result_type(a, b))
    if stack and stack[0] >= workers:
        parts = [(_lead(a, out, p), _lead(b, out, p), out[p]) for p in _split(stack[0], workers)]
    elif n >= m:
        parts = [(a, b[..., p], out[..., p]) for p in _split(n, workers)]
    else:
        parts = [(a[..., p, :], b, out[..., p, :]) for p in _split(m, workers)]
    with threads.blas_threads(1):
        threads.parallel_map(lambda part: _product(*part), parts)
    return out


GRADIENT_SHARED_FROM = 1 << 20
"""Multiply-adds from which a product that feeds a gradient (a training step's, see
:func:`convscope.ops.algorithms.precise`) is shared out, BLAS on one core per thread.  Not
to divide the work, which BLAS's own threads do as well, but to keep BLAS's worker threads
idle: after each threaded GEMM an OpenBLAS worker spins on a core for about 0.1 s, and the
compiled kernels that run next (the 'blocked' convolutions, BatchNorm, pooling) lose that
core.  ResNet-18's SGD step at batch 8, 2 threads, x torch, one process, interleaved (BLAS
set to one thread throughout and the engine's GEMMs shared out, standing in for this rule):
1.79 -> 1.67, and 1.48 with the stride-1 layers on 'blocked' too (1.85 with 'blocked' but
BLAS's workers spinning); with this rule itself, forward+backward 743 -> 628 ms."""

FEW_ROWS = 64
"""Rows of ``a`` up to which a wide 2-D product is computed as ``(b.T @ a.T).T``: OpenBLAS
then packs the big operand once per call as the left one (one thread: (49 x 768) @ (768 x
3072) 2.64 -> 2.31 ms, (16 x 3072) @ (3072 x 768) 1.66 -> 1.03 ms, torch 1.95 and 1.19;
from about 196 rows the plain order is as fast)."""


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, a few rows times a wide matrix in the transposed order."""
    if a.ndim == b.ndim == 2 and 1 < a.shape[0] <= FEW_ROWS and b.shape[1] >= 4 * a.shape[0]:
        if a.shape[1] != b.shape[0]:
            return np.matmul(a, b, out=out)  # NumPy's error
        product = np.matmul(b.T, a.T).T
        if out is None:
            return np.ascontiguousarray(product)
        out[...] = product
        return out
    return np.matmul(a, b, out=out)


def _split(length: int, workers: int) -> list[slice]:
    return threads.split(length, workers)


def _lead(operand: np.ndarray, out: np.ndarray, part: slice) -> np.ndarray:
    """``operand``'s share of the output's first stack axis (all of it when broadcast)."""
    if operand.ndim == out.ndim and operand.shape[0] == out.shape[0]:
        return operand[part]
    return operand
