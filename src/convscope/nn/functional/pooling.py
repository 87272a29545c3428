"""Max, average and adaptive average pooling: one N-d path on the convolution's window machinery."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import geometry
from ...autograd import nn_ops as _nn_ops
from ...ops import pool as _pool
from ...ops.tiling import ConvGeometry
from ...tensor import Tensor
from ._common import _require_float, _tensor_arg, _type_name

# dtype objects, not names: ``dtype.name`` takes microseconds, a set lookup does not
_MAX_POOL_DTYPES = frozenset(
    np.dtype(t)
    for t in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")
)
_AVG_POOL_DTYPES = frozenset(np.dtype(t) for t in ("float16", "float32", "float64", "int64"))


def _pool_tuple(value: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    if type(value) is int:  # the usual cases first (a layer's int or normalised tuple)
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value
    geometry.check_int_sequence(value, name, op)
    values = tuple(value) if isinstance(value, Sequence) else (value,)
    if len(values) == 1:
        values *= n
    if len(values) != n:
        raise RuntimeError(f"{op}: {name} must either be a single int, or a tuple of {n} ints")
    return tuple(int(v) for v in values)


def _pool_input(op: str, n: int, input: Any, dtypes: frozenset[np.dtype]) -> Tensor:
    """The input as a tensor after PyTorch's rank, emptiness and dtype checks."""
    x = _tensor_arg(input, "input", op)
    if x.ndim not in (n + 1, n + 2) or 0 in x.shape[-n - 1 :]:
        raise RuntimeError(
            f"{op}: Expected {n + 1}D or {n + 2}D (batch mode) tensor with optional 0 dim batch "
            f"size for input, but got: {list(x.shape)}"
        )
    if x.dtype not in dtypes:
        raise NotImplementedError(f"\"{op}\" not implemented for '{_type_name(x.dtype)}'")
    return x


def _pool_windows(
    op: str,
    n: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    dtypes: frozenset[np.dtype],
) -> tuple[Tensor, ConvGeometry]:
    """Validate a sliding-window pooling like PyTorch; the batched input and its windows."""
    kernel = _pool_tuple(kernel_size, n, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, Sequence) and len(stride) == 0)
    strides = kernel if no_stride else _pool_tuple(stride, n, "stride", op)
    pads = _pool_tuple(padding, n, "padding", op)
    dilations = _pool_tuple(dilation, n, "dilation", op)
    x = _pool_input(op, n, input, dtypes)
    geometry.check_kernel(kernel)
    geometry.check_stride_dilation(strides, dilations)
    for p, k, d in zip(pads, kernel, dilations, strict=True):
        if p < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {p}")
        if p > k // 2:
            raise RuntimeError(
                "pad should be at most half of effective kernel size, but got "
                f"pad={p}, kernel_size={k} and dilation={d}"
            )
    batched = x if x.ndim == n + 2 else x.unsqueeze(0)
    geom = _pool.pool_geometry(batched.shape, kernel, strides, pads, dilations, ceil_mode)
    if min(geom.output_size) < 1:
        sizes = "x".join(str(s) for s in x.shape[-n - 1 :])
        out = "x".join(str(s) for s in (x.shape[-n - 1], *geom.output_size))
        raise RuntimeError(
            f"Given input size: ({sizes}). Calculated output size: ({out}). "
            "Output size is too small"
        )
    return batched, geom


def _documented(function: Any, name: str, doc: str) -> Any:
    """Name and document one per-dimension function made by a factory below."""
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


def _max_pool_nd(n: int, doc: str) -> Any:
    """``max_pool{n}d``: one N-d code path, PyTorch's signature."""
    op = f"max_pool{n}d"

    def max_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> Any:
        window = (kernel_size, stride, padding, dilation, ceil_mode)
        batched, geom = _pool_windows(op, n, input, *window, _MAX_POOL_DTYPES)
        y, where = _nn_ops.max_pool(batched, geom, return_indices)
        if np.ndim(input) == n + 1:
            y = y.squeeze(0)
        if not return_indices:
            return y
        indices = Tensor(where)
        return y, indices.squeeze(0) if np.ndim(input) == n + 1 else indices

    return _documented(max_pool, op, doc)


max_pool1d = _max_pool_nd(
    1,
    """Maximum over windows of ``(N, C, L)`` or ``(C, L)``; with ``return_indices`` also the
    position of each maximum in ``L``.

    >>> import convscope as cs
    >>> y, i = max_pool1d(cs.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0]]]), 2, ceil_mode=True,
    ...                   return_indices=True)
    >>> y.tolist(), i.tolist()
    ([[[5.0, 2.0, 3.0]]], [[[1, 2, 4]]])
    """,
)
max_pool2d = _max_pool_nd(
    2,
    """Maximum over windows of ``(N, C, H, W)`` or ``(C, H, W)`` (indices flat in ``H*W``).

    >>> import convscope as cs
    >>> max_pool2d(cs.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """,
)
max_pool3d = _max_pool_nd(
    3,
    """Maximum over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> from convscope import rand
    >>> max_pool3d(rand(1, 2, 6, 6, 6), 3, stride=2, padding=1).shape
    (1, 2, 3, 3, 3)
    """,
)


def _avg_pool(
    op: str,
    n: int,
    input: Any,
    window: tuple,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    kernel_size, stride, padding, ceil_mode = window
    window = (kernel_size, stride, padding, 1, ceil_mode)
    batched, geom = _pool_windows(op, n, input, *window, _AVG_POOL_DTYPES)
    size = batched.shape[2:]
    if n == 3 and any(h < k for h, k in zip(size, geom.kernel_size, strict=True)):
        # PyTorch's avg_pool3d (alone) also wants a whole kernel inside the unpadded input
        raise RuntimeError(
            f"input image (T: {size[0]} H: {size[1]} W: {size[2]}) smaller than kernel size "
            f"(kT: {geom.kernel_size[0]} kH: {geom.kernel_size[1]} kW: {geom.kernel_size[2]})"
        )
    y = _nn_ops.avg_pool(batched, geom, count_include_pad, divisor_override)
    return y.squeeze(0) if np.ndim(input) == n + 1 else y


def avg_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over windows of ``(N, C, L)`` or ``(C, L)``; ``count_include_pad=False`` divides by
    the cells inside the input only.

    >>> import convscope as cs
    >>> avg_pool1d(cs.tensor([[1.0, 2.0, 3.0]]), 2, padding=1, count_include_pad=False).tolist()
    [[1.0, 2.5]]
    """
    window = (kernel_size, stride, padding, ceil_mode)
    return _avg_pool("avg_pool1d", 1, input, window, count_include_pad, None)


def _avg_pool_nd(n: int, doc: str) -> Any:
    """``avg_pool{n}d`` for ``n`` = 2, 3 (1-D has no ``divisor_override``)."""
    op = f"avg_pool{n}d"

    def avg_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> Tensor:
        window = (kernel_size, stride, padding, ceil_mode)
        return _avg_pool(op, n, input, window, count_include_pad, divisor_override)

    return _documented(avg_pool, op, doc)


avg_pool2d = _avg_pool_nd(
    2,
    """Mean over windows of ``(N, C, H, W)`` or ``(C, H, W)``; ``divisor_override`` replaces the
    window size as divisor.

    >>> import convscope as cs
    >>> avg_pool2d(cs.ones(1, 1, 4, 4), 2, divisor_override=2).tolist()
    [[[[2.0, 2.0], [2.0, 2.0]]]]
    """,
)
avg_pool3d = _avg_pool_nd(
    3,
    """Mean over windows of ``(N, C, D, H, W)`` or ``(C, D, H, W)``.

    >>> from convscope import ones
    >>> avg_pool3d(ones(2, 2, 2, 2), kernel_size=2).tolist()
    [[[[1.0]]], [[[1.0]]]]
    """,
)


def _int_like(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _adaptive_sizes(op: str, n: int, output_size: Any) -> tuple:
    """``output_size`` per dimension (``None`` keeps the input size, 2-D and 3-D only)."""
    many = isinstance(output_size, Sequence)
    sizes = tuple(output_size) if many else (output_size,) * n
    if not all(_int_like(s) or (s is None and many and n > 1) for s in sizes):
        raise TypeError(
            f"{op}(): argument 'output_size' must be tuple of ints, not {output_size!r}"
        )
    if len(sizes) != n:
        raise RuntimeError(f"{op}: output_size must be {n}")
    if any(s is not None and s < 0 for s in sizes):
        raise RuntimeError(
            f"{op}: elements of output_size must be greater than or equal to 0 but received {sizes}"
        )
    return sizes


def _adaptive_avg_pool(op: str, n: int, input: Any, output_size: Any) -> Tensor:
    x = _tensor_arg(input, "input", op)
    sizes = _adaptive_sizes(op, n, output_size)
    if x.ndim not in (n + 1, n + 2) or 0 in x.shape[-n - 1 :]:
        raise RuntimeError(
            f"{op}(): Expected {n + 1}D or {n + 2}D tensor with non-zero sizes for non-batch "
            f"dimensions, but got {list(x.shape)}"
        )
    _require_float(x, op)
    spatial = x.shape[-n:]
    segments = [
        _pool.adaptive_segments(h, h if s is None else s)
        for h, s in zip(spatial, sizes, strict=True)
    ]
    return _nn_ops.segment_means(x, segments, "AdaptiveAvgPool")


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Mean over ``output_size`` windows covering ``L`` (``[floor(i*L/out), ceil((i+1)*L/out))``).

    >>> import convscope as cs
    >>> adaptive_avg_pool1d(cs.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), 3).tolist()
    [[1.5, 3.0, 4.5]]
    """
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Adaptive mean over ``H, W``; a ``None`` entry keeps that size.

    >>> import convscope as cs
    >>> adaptive_avg_pool2d(cs.rand(1, 3, 7, 5), (None, 2)).shape
    (1, 3, 7, 2)
    """
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input: Any, output_size: Any) -> Tensor:
    """Adaptive mean over ``D, H, W``; ``output_size=1`` is a global average.

    >>> import convscope as cs
    >>> adaptive_avg_pool3d(cs.ones(2, 3, 4, 5), 1).tolist()
    [[[[1.0]]], [[[1.0]]]]
    """
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)
