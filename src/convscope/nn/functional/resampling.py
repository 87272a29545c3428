"""Resampling (``interpolate``): nearest, linear/bilinear/bicubic/trilinear, antialiased and area
modes, with PyTorch's argument checks and output sizes.

Interpolating modes are separable: one tap table per spatial axis (``ops.resample``), applied
along each axis in turn; the gradient applies the transposed tables.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...autograd import nn_ops as _nn_ops
from ...autograd.engine import attach
from ...ops import pool as _pool
from ...ops import resample as _resample
from ...tensor import Tensor
from ._common import _tensor_arg, _type_name
from .pooling import _int_like, adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d

#: The rank each interpolating mode needs (spatial dimensions).
_INTERPOLATING = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3, "lanczos": 2}
#: The 1-D kernel behind each interpolating mode.
_KIND = {
    "linear": "linear",
    "bilinear": "linear",
    "trilinear": "linear",
    "bicubic": "cubic",
    "lanczos": "lanczos",
}
_ADAPTIVE = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}
_AXES = ("D", "H", "W")


def _spatial(x: Tensor) -> list[int]:
    return list(x.shape[2:])


def _sizes_and_scales(
    x: Tensor, n: int, size: Any, scale_factor: Any, recompute: bool | None, mode: str
) -> tuple[list[int], list[float | None]]:
    """PyTorch's output size per spatial axis and the scale factor its kernel receives."""
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, list | tuple):
            if len(size) != n:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got "
                    f"input with spatial dimensions of {_spatial(x)} and output size of {size}. "
                    "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output "
                    "size in (o1, o2, ...,oK) format."
                )
            sizes = list(size)
        else:
            sizes = [size] * n
        if not all(_int_like(s) for s in sizes):
            raise TypeError(
                "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                f"Tuple[int, int, int], but got size with types {[type(s) for s in sizes]}"
            )
        if recompute:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return [int(s) for s in sizes], [None] * n
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, list | tuple):
        if len(scale_factor) != n:
            raise ValueError(
                "Input and scale_factor must have the same number of spatial dimensions, but "
                f"got input with spatial dimensions of {_spatial(x)} and scale_factor of shape "
                f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                "and scale_factor in (s1, s2, ...,sK) format."
            )
        scales = list(scale_factor)
    else:
        scales = [scale_factor] * n
    if not all(isinstance(s, int | float | np.integer | np.floating) for s in scales):
        raise TypeError(
            f"scale_factor must be a number or a sequence of numbers, got {scale_factor!r}"
        )
    if recompute or mode == "area":
        # torch rounds these sizes in Python (int() truncates) and forgets the factors
        return [int(h * s) for h, s in zip(x.shape[2:], scales, strict=True)], [None] * n
    sizes = []
    for h, s in zip(x.shape[2:], scales, strict=True):
        length = float(h) * float(s)
        if not math.isfinite(length) or abs(length) >= 2.0**63:
            raise RuntimeError("value cannot be converted to type int64_t without overflow")
        sizes.append(int(length))
    return sizes, [float(s) for s in scales]


def _check_rank(mode: str, x: Tensor) -> None:
    rank = x.ndim
    if mode in ("nearest", "nearest-exact", "area") and 3 <= rank <= 5:
        return
    need = _INTERPOLATING.get(mode)
    if need == rank - 2:
        return
    if mode in ("linear", "bilinear", "trilinear") and 3 <= rank <= 5:
        raise NotImplementedError(f"Got {rank}D input, but {mode} mode needs {need + 2}D input")
    raise NotImplementedError(
        f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {rank}D) for the modes: "
        "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact "
        f"(got {mode})"
    )


def _check_sizes(x: Tensor, sizes: Sequence[int]) -> None:
    """PyTorch's checks of the spatial sizes (all positive) and of an empty channel axis."""
    inputs, axes = _spatial(x), _AXES[-len(sizes) :]
    if min(inputs + list(sizes)) <= 0:
        got_in = ", ".join(f"{a}: {s}" for a, s in zip(axes, inputs, strict=True))
        got_out = ", ".join(f"{a}: {s}" for a, s in zip(axes, sizes, strict=True))
        joint = " and" if len(sizes) == 1 else ""
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input "
            f"({got_in}){joint} output ({got_out})"
        )
    if x.data.size == 0 and math.prod(x.shape[1:]) == 0:
        raise RuntimeError(
            f"Non-empty {x.ndim}D data tensor expected but got a tensor with sizes {list(x.shape)}"
        )


def _kernel_name(mode: str, antialias: bool, sizes: Sequence[int]) -> str:
    """The name PyTorch's CPU kernel reports when it does not support a dtype."""
    if antialias:
        return "compute_index_ranges_weights"
    # 2-D nearest and bilinear take a vectorised kernel for small outputs
    small = len(sizes) == 2 and sum(sizes) <= 128
    if mode in ("nearest", "nearest-exact"):
        return "upsample_nearest2d_channels_last" if small else "compute_indices_weights_nearest"
    if mode == "bicubic":
        return "compute_indices_weights_cubic"
    if mode == "bilinear" and small:
        return "upsample_bilinear2d_channels_last"
    return "compute_indices_weights_linear"


def _check_dtype(x: Tensor, mode: str, antialias: bool, sizes: Sequence[int]) -> None:
    supported = {"float32", "float64", "uint8"} if antialias else {"float16", "float32", "float64"}
    if mode in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        supported.add("uint8")
    if x.dtype.name not in supported:
        raise NotImplementedError(
            f'"{_kernel_name(mode, antialias, sizes)}" not implemented for '
            f"'{_type_name(x.dtype)}'"
        )


def _tables(
    x: Tensor,
    sizes: Sequence[int],
    scales: Sequence[float | None],
    mode: str,
    antialias: bool,
    align_corners: bool,
) -> list[_resample.AxisTaps]:
    """One tap table per spatial axis: fixed point for uint8, else in the input's precision."""
    kind = _KIND[mode]
    axes = list(zip(x.shape[2:], sizes, scales, strict=True))
    if x.dtype == np.uint8:
        return [
            _resample.fixed_point_taps(h, o, kind, antialias, align_corners, s) for h, o, s in axes
        ]
    if antialias:
        return [_resample.filter_taps(h, o, kind, align_corners, s, x.dtype) for h, o, s in axes]
    build = _resample.cubic_taps if kind == "cubic" else _resample.linear_taps
    return [build(h, o, align_corners, s, x.dtype) for h, o, s in axes]


def _resample_op(x: Tensor, tables: Sequence[_resample.AxisTaps], name: str) -> Tensor:
    """The autograd op: separable resampling forward, the transposed tables backward."""
    shape = x.shape
    return attach(
        Tensor(_resample.resample(x.data, tables)),
        (x,),
        lambda g, needs: (_resample.resample_backward(g, tables, shape),),
        name,
    )


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resample ``(N, C, *spatial)`` to ``size`` or by ``scale_factor`` as PyTorch does.

    Modes: ``'nearest'``, ``'nearest-exact'``, ``'linear'`` (3-D input), ``'bilinear'`` and
    ``'bicubic'`` (4-D), ``'trilinear'`` (5-D), ``'area'`` (adaptive average pooling), and
    ``'lanczos'`` (4-D, ``antialias=True`` only).  ``antialias=True`` low-pass filters before
    downsampling (bilinear, bicubic, lanczos; 4-D input).

    >>> import convscope as cs
    >>> interpolate(cs.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    >>> interpolate(cs.tensor([[[0.0, 3.0]]]), size=4, mode="linear", align_corners=True).tolist()
    [[[0.0, 1.0, 2.0, 3.0]]]
    """
    x = _tensor_arg(input, "input", "interpolate")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    elif align_corners is None:
        align_corners = False
    n = x.ndim - 2
    sizes, scales = _sizes_and_scales(x, n, size, scale_factor, recompute_scale_factor, mode)
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and x.ndim == 4):
        raise ValueError(
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and "
            "requires a 4-D tensor as input"
        )
    _check_rank(mode, x)
    if mode == "lanczos":
        if align_corners:
            raise ValueError("Lanczos mode does not support align_corners=True")
        if not antialias:
            raise ValueError("Lanczos mode requires antialias=True")
    if mode == "area":
        return _ADAPTIVE[n](x, sizes)
    if mode in _INTERPOLATING and not isinstance(align_corners, bool):
        raise TypeError(
            f"upsample_{mode}{n}d(): argument 'align_corners' must be bool, not "
            f"{type(align_corners).__name__}"
        )
    _check_sizes(x, sizes)
    _check_dtype(x, mode, antialias, sizes)
    if mode in ("nearest", "nearest-exact"):
        segments = [
            _pool.nearest_segments(h, o, s, exact=mode == "nearest-exact", shortcuts=n == 2)
            for h, o, s in zip(x.shape[2:], sizes, scales, strict=True)
        ]
        return _nn_ops.segment_means(x, segments, "UpsampleNearest")
    tables = _tables(x, sizes, scales, mode, antialias, align_corners)
    if x.dtype == np.uint8:
        return Tensor(_resample.resample_fixed(x.data, tables))
    name = f"Upsample{mode.capitalize()}{n}D" + ("Aa" if antialias else "")
    return _resample_op(x, tables, name)


def _deprecated(name: str) -> None:
    warnings.warn(
        f"`nn.functional.{name}` is deprecated. Use `nn.functional.interpolate` instead.",
        stacklevel=3,
    )


def upsample(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Deprecated spelling of :func:`interpolate` (warns, as PyTorch does).

    >>> import warnings, convscope as cs
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     upsample(cs.ones(1, 1, 2), scale_factor=2).shape
    (1, 1, 4)
    """
    _deprecated("upsample")
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Deprecated: :func:`interpolate` with ``mode='nearest'``.

    >>> import warnings, convscope as cs
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     upsample_nearest(cs.ones(1, 1, 2, 2), 3).shape
    (1, 1, 3, 3)
    """
    _deprecated("upsample_nearest")
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Deprecated: :func:`interpolate` with ``mode='bilinear'`` and ``align_corners=True``.

    >>> import warnings, convscope as cs
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     upsample_bilinear(cs.tensor([[[[0.0, 2.0]]]]), (1, 3)).tolist()
    [[[[0.0, 1.0, 2.0]]]]
    """
    _deprecated("upsample_bilinear")
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
