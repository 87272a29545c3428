"""The global random generator and random tensor factories, on PyTorch's CPU stream.

PyTorch's CPU generator is a Mersenne Twister (MT19937) seeded with ``init_genrand(seed)``
(from operating-system entropy until ``manual_seed`` is called).  convscope keeps the same
twister, so ``cs.rand``, ``cs.randn``, ``nn.init.uniform_`` / ``normal_`` and everything built
on them (``kaiming_uniform_``, the layers' default initialisation, ``xavier_*``) draw
PyTorch's numbers: after ``cs.manual_seed(s)`` and ``torch.manual_seed(s)`` the same calls
give the same values (uniform draws to the last bit; normal ones to about 1e-6, PyTorch's
float32 kernel using vectorised approximations of log, sin and cos).  Other draws (dropout
masks, shuffles, ``randint``) use the same twister through NumPy's ``Generator`` API and
follow their own algorithms, not PyTorch's.

>>> import convscope as cs
>>> _ = cs.manual_seed(0)
>>> [round(v, 4) for v in cs.rand(3).tolist()]  # torch.manual_seed(0); torch.rand(3)
[0.4963, 0.7682, 0.0885]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dtypes
from .tensor import Tensor, _shape_arg

_MANTISSA_BITS = {np.dtype(np.float16): 11, np.dtype(np.float32): 24, np.dtype(np.float64): 53}


def _twister_key(seed: int) -> np.ndarray:
    """MT19937's ``init_genrand``: the 624-word state PyTorch derives from a seed."""
    key = np.empty(624, dtype=np.uint32)
    value = seed & 0xFFFFFFFF
    key[0] = value
    for i in range(1, 624):
        value = (1812433253 * (value ^ (value >> 30)) + i) & 0xFFFFFFFF
        key[i] = value
    return key


class TorchStream:
    """A Mersenne Twister drawing as PyTorch's CPU generator does.

    ``numpy`` is a ``numpy.random.Generator`` on the same twister, for draws PyTorch has no
    counterpart of here; ``seed`` is what ``manual_seed`` was given.

    >>> stream = TorchStream(0)
    >>> [round(v, 4) for v in stream.uniform((2,), 0.0, 1.0, np.float32).tolist()]
    [0.4963, 0.7682]
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.bits = np.random.MT19937(0)
        state = {"key": _twister_key(self.seed % (1 << 64)), "pos": 624}
        self.bits.state = {"bit_generator": "MT19937", "state": state}
        self.numpy = np.random.Generator(self.bits)
        self._cached_normal: float | None = None  # Box-Muller's second value, as PyTorch keeps

    def _units(self, count: int, dtype: np.dtype) -> np.ndarray:
        """``count`` uniforms on [0, 1) as float64, each from PyTorch's bits for ``dtype``:
        one 32-bit word masked to the mantissa, two words for float64."""
        bits = _MANTISSA_BITS[dtype]
        if bits <= 32:
            words = self.bits.random_raw(count) & ((1 << bits) - 1)
        else:
            pairs = self.bits.random_raw(2 * count).reshape(count, 2)
            words = ((pairs[:, 0] << np.uint64(32)) | pairs[:, 1]) & ((1 << bits) - 1)
        return words.astype(np.float64) * (1.0 / (1 << bits))

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: Any) -> np.ndarray:
        """``torch.empty(shape, dtype).uniform_(low, high)``: serial draws, the bounds rounded
        to ``dtype`` first and the span taken in ``dtype``, as PyTorch's CPU kernel does."""
        dtype = np.dtype(dtype)
        low_t, high_t = dtype.type(low), dtype.type(high)
        span = float(high_t - low_t)
        units = self._units(math.prod(shape), dtype)
        return (units * span + float(low_t)).astype(dtype).reshape(shape)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: Any) -> np.ndarray:
        """``torch.empty(shape, dtype).normal_(mean, std)``: from 16 values on, Box-Muller over
        blocks of 16 uniforms (the last block redrawn when the size is not a multiple of 16);
        below, one value at a time with PyTorch's cached second sample."""
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        if size < 16:
            values = [self._one_normal() * std + mean for _ in range(size)]
            return np.asarray(values, dtype=np.float64).astype(dtype).reshape(shape)
        out = self._units(size, dtype).astype(dtype)
        full = size // 16 * 16
        blocks = out[:full].reshape(-1, 2, 8)
        blocks[...] = _box_muller_16(blocks, mean, std, dtype)
        if size % 16:
            tail = self._units(16, dtype).astype(dtype).reshape(1, 2, 8)
            out[size - 16 :] = _box_muller_16(tail, mean, std, dtype).reshape(16)
        return out.reshape(shape)

    def _one_normal(self) -> float:
        if self._cached_normal is not None:
            value, self._cached_normal = self._cached_normal, None
            return value
        u1, u2 = self._units(2, np.dtype(np.float64))
        radius = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self._cached_normal = radius * math.sin(theta)
        return radius * math.cos(theta)


def _box_muller_16(blocks: np.ndarray, mean: float, std: float, dtype: np.dtype) -> np.ndarray:
    """PyTorch's ``normal_fill_16`` on ``(k, 2, 8)`` uniforms: the first 8 of each block give
    the radii, the last 8 the angles; computed in ``dtype`` like the C++ kernel."""
    one, two = dtype.type(1), dtype.type(-2)
    radius = np.sqrt(two * np.log(one - blocks[:, 0]))
    theta = (2.0 * math.pi * blocks[:, 1].astype(np.float64)).astype(dtype)
    std_t, mean_t = dtype.type(std), dtype.type(mean)
    result = np.empty_like(blocks)
    result[:, 0] = radius * np.cos(theta) * std_t + mean_t
    result[:, 1] = radius * np.sin(theta) * std_t + mean_t
    return result


_stream = TorchStream(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (PyTorch's ``torch.manual_seed``); returns its NumPy face."""
    global _stream
    _stream = TorchStream(int(seed))
    return _stream.numpy


def initial_seed() -> int:
    """The seed the global generator was last given."""
    return _stream.seed


def default_generator() -> np.random.Generator:
    """NumPy's ``Generator`` API on the global twister (dropout masks, shuffles, crops)."""
    return _stream.numpy


def torch_stream() -> TorchStream:
    """The global twister with PyTorch's uniform and normal draws."""
    return _stream


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
    if dtype.kind != "f":
        raise RuntimeError(f"random floating-point values need a floating dtype, got {dtype}")
    return dtype


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on ``[0, 1)``, the values ``torch.rand`` gives after the same seed."""
    dtype = _float_dtype(dtype)
    data = _stream.uniform(_shape_arg(size), 0.0, 1.0, dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples, the values ``torch.randn`` gives after the same seed."""
    dtype = _float_dtype(dtype)
    data = _stream.normal(_shape_arg(size), 0.0, 1.0, dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None) -> Tensor:
    """Integers uniform on ``[low, high)`` (``randint(high, size=...)`` starts at 0)."""
    if high is None:
        low, high = 0, low
    data = _stream.numpy.integers(low, high, size=_shape_arg((size,)) if size != () else ())
    return Tensor(np.asarray(data, dtype=_dtypes.int64 if dtype is None else dtype))
