"""Elementwise functions whose NumPy form makes several full-size passes.

>>> import numpy as np
>>> gelu(np.array([-1.0, 0.0, 2.0])).round(6).tolist()
[-0.158655, 0.0, 1.9545]
"""

from __future__ import annotations

import math

import numpy as np

from . import jit


def erf(values: np.ndarray) -> np.ndarray:
    """Elementwise error function in ``values``' dtype: ``scipy.special.erf`` (vectorised, the
    ``fast`` extra) when installed, else ``math.erf`` element by element (about 100 ns each)."""
    try:
        from scipy.special import erf as vectorised
    except ImportError:
        return np.frompyfunc(math.erf, 1, 1)(values).astype(values.dtype)
    return vectorised(values).astype(values.dtype, copy=False)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU of a float array: one compiled pass with numba, else through
    :func:`erf` with NumPy temporaries."""
    if jit.kernels() is not None and x.dtype in (np.float32, np.float64) and x.size:
        source = np.ascontiguousarray(x)
        out = np.empty_like(source)
        kernel = "gelu_single" if x.dtype == np.float32 else "gelu"
        jit.call(kernel, source.reshape(-1), out.reshape(-1))
        return out
    return (x * normal_cdf(x)).astype(x.dtype, copy=False)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """``(1 + erf(x / sqrt(2))) / 2`` without the cancellation of ``1 + erf`` for negative
    ``x``: ``scipy.special.ndtr`` when installed, else ``erfc(-x / sqrt(2)) / 2`` by
    ``math.erfc`` element by element."""
    try:
        from scipy.special import ndtr
    except ImportError:
        half_erfc = np.frompyfunc(lambda v: 0.5 * math.erfc(-v / math.sqrt(2)), 1, 1)
        return half_erfc(x).astype(x.dtype)
    return ndtr(x).astype(x.dtype, copy=False)
