"""The global random generator (seeded by :func:`manual_seed`) and random tensor factories.

Streams differ from PyTorch's (different generator), but the distributions are the same.

>>> import convscope as cs
>>> _ = cs.manual_seed(0); a = cs.rand(2, 3)
>>> _ = cs.manual_seed(0); b = cs.rand(2, 3)
>>> bool((a == b).numpy().all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _dtypes
from .tensor import Tensor, _shape_arg

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator used by ``rand``, ``randn`` and layer initialisation."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The generator every random factory and ``nn.init`` function draws from."""
    return _generator


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
    if dtype.kind != "f":
        raise RuntimeError(f"random floating-point values need a floating dtype, got {dtype}")
    return dtype


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on ``[0, 1)``."""
    dtype = _float_dtype(dtype)
    data = _generator.random(_shape_arg(size), dtype=np.float64).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    dtype = _float_dtype(dtype)
    data = _generator.standard_normal(_shape_arg(size)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None) -> Tensor:
    """Integers uniform on ``[low, high)`` (``randint(high, size=...)`` starts at 0)."""
    if high is None:
        low, high = 0, low
    data = _generator.integers(low, high, size=_shape_arg((size,)) if size != () else ())
    return Tensor(np.asarray(data, dtype=_dtypes.int64 if dtype is None else dtype))
