"""``conv{n}d`` and ``conv_transpose{n}d`` over dask arrays, with ``nn.functional``'s arguments
(plus ``padding_mode`` for the plain convolutions) and its checks and errors.

>>> import numpy as np
>>> import dask.array as da
>>> from convscope.nn import functional as F
>>> x = da.from_array(np.arange(40.0).reshape(1, 1, 40), chunks=(1, 1, 7))
>>> w = np.ones((1, 1, 3))
>>> y = conv1d(x, w, stride=2, padding="same", padding_mode="replicate")
>>> y.chunks[2]
(3, 4, 3, 4, 3, 3)
>>> reference = F.conv1d(F.pad(x.compute(), (0, 1), "replicate"), w, stride=2).numpy()
>>> bool((y.compute() == reference).all())
True
"""

from __future__ import annotations

from typing import Any

from ..nn import functional as F
from . import steps
from .chain import run_steps


def _batched(x: Any, n: int, op: str) -> tuple[Any, bool]:
    import dask.array as da

    if not isinstance(x, da.Array):
        raise TypeError(
            f"{op}(): argument 'input' must be a dask.array.Array, not {type(x).__name__}"
        )
    if x.ndim not in (n + 1, n + 2):
        raise RuntimeError(
            f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {op}, but got input of "
            f"size: {list(x.shape)}"
        )
    unbatched = x.ndim == n + 1
    x = x[None] if unbatched else x
    return (x.rechunk({1: -1}) if x.numblocks[1] != 1 else x), unbatched


def _one_layer(n: int, x: Any, function: Any, make_steps: Any) -> Any:
    """``x`` (batched or not) through the steps ``make_steps(shape, dtype)`` builds."""
    x, unbatched = _batched(x, n, function.__name__)
    y = run_steps(x, [make_steps])
    return y[0] if unbatched else y


def _conv(n: int, x, weight, bias, stride, padding, dilation, groups, padding_mode) -> Any:
    function = getattr(F, f"conv{n}d")
    if padding_mode not in steps.PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {set(steps.PADDING_MODES)}, but got "
            f"padding_mode='{padding_mode}'"
        )
    return _one_layer(
        n,
        x,
        function,
        lambda shape, dtype: steps.conv_steps(
            shape, dtype, function, weight, bias, stride, padding, dilation, groups, padding_mode
        ),
    )


def _conv_transpose(n: int, x, weight, bias, stride, padding, output_padding, groups, dilation):
    function = getattr(F, f"conv_transpose{n}d")
    return _one_layer(
        n,
        x,
        function,
        lambda shape, dtype: steps.conv_transpose_steps(
            shape, dtype, function, weight, bias, stride, padding, output_padding, groups, dilation
        ),
    )


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """``nn.functional.conv1d`` over a dask array ``(N, C, L)`` or ``(C, L)``."""
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """``nn.functional.conv2d`` over a dask array ``(N, C, H, W)`` or ``(C, H, W)``."""
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """``nn.functional.conv3d`` over a dask array ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""
    return _conv(3, x, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv_transpose1d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """``nn.functional.conv_transpose1d`` over a dask array."""
    return _conv_transpose(1, x, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """``nn.functional.conv_transpose2d`` over a dask array."""
    return _conv_transpose(2, x, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """``nn.functional.conv_transpose3d`` over a dask array."""
    return _conv_transpose(3, x, weight, bias, stride, padding, output_padding, groups, dilation)
