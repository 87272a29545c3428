"""Weight initialisation with PyTorch's formulas (in place, drawing from ``cs.manual_seed``).

>>> import convscope as cs
>>> w = cs.zeros(16, 3, 3, 3)
>>> _ = kaiming_uniform_(w, a=5 ** 0.5)   # PyTorch's default for conv layers
>>> bool(abs(w.numpy()).max() <= 1 / 27 ** 0.5)
True
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from collections.abc import Iterator

import numpy as np

from ..random import default_generator, torch_stream
from ..tensor import Tensor

_LINEAR = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


_skipping = contextvars.ContextVar("convscope_skip_init", default=False)


@contextlib.contextmanager
def skipped() -> Iterator[None]:
    """Inside the block every filling function here leaves its tensor as it is (no random
    draws, no float64 temporaries): for modules whose weights are about to be loaded.  See
    :func:`convscope.nn.utils.skip_init`.

    >>> import convscope as cs
    >>> with skipped():
    ...     layer = cs.nn.Linear(1000, 1000)  # no 1M uniform draws
    >>> _ = layer.load_state_dict({"weight": cs.zeros(1000, 1000), "bias": cs.zeros(1000)})
    >>> float(layer.weight.abs().sum())
    0.0
    """
    token = _skipping.set(True)
    try:
        yield
    finally:
        _skipping.reset(token)


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor.data[...] = values
    return tensor


def _empty(tensor: Tensor) -> bool:
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def _draw_dtype(tensor: Tensor) -> np.dtype:
    return tensor.dtype if tensor.dtype.kind == "f" else np.dtype(np.float64)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b): the values PyTorch draws after the same ``manual_seed``.

    >>> import convscope as cs
    >>> _ = cs.manual_seed(0)
    >>> [round(v, 4) for v in uniform_(cs.empty(3), -1.0, 1.0).tolist()]
    [-0.0075, 0.5364, -0.823]
    """
    if _skipping.get():
        return tensor
    return _fill(tensor, torch_stream().uniform(tensor.shape, a, b, _draw_dtype(tensor)))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std²): PyTorch's values after the same ``manual_seed``."""
    if _skipping.get():
        return tensor
    return _fill(tensor, torch_stream().normal(tensor.shape, mean, std, _draw_dtype(tensor)))


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Tensor:
    """Normal(mean, std) conditioned on ``[a, b]`` (rejection sampling: the exact distribution)."""
    if not a < b:
        raise ValueError(f"trunc_normal_ needs a < b, got a={a}, b={b}")
    if _skipping.get():
        return tensor
    rng, out = default_generator(), np.empty(tensor.numel())
    filled = 0
    while filled < out.size:
        draw = rng.normal(mean, std, max(2 * (out.size - filled), 64))
        keep = draw[(draw >= a) & (draw <= b)][: out.size - filled]
        out[filled : filled + keep.size] = keep
        filled += keep.size
    return _fill(tensor, out.reshape(tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    if _skipping.get():
        return tensor
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Uniform on ``±gain * sqrt(3 / fan)``; with ``a=sqrt(5)`` that is ``±1/sqrt(fan_in)``."""
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Normal with std ``gain / sqrt(fan)``."""
    if _empty(tensor):
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))
