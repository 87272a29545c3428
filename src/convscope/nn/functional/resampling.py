"""Nearest-neighbour resampling (``interpolate``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...autograd import nn_ops as _nn_ops
from ...ops import pool as _pool
from ...tensor import Tensor
from ._common import _tensor_arg
from .pooling import _int_like


def _per_dim(value: Any, n: int, name: str, x: Tensor) -> list:
    if not isinstance(value, Sequence):
        return [value] * n
    if len(value) != n:
        raise ValueError(
            f"Input and {name} must have the same number of spatial dimensions, but got input "
            f"with spatial dimensions of {list(x.shape[2:])} and {name} of {value}."
        )
    return list(value)


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resample ``(N, C, *spatial)`` to ``size`` or by ``scale_factor`` (``'nearest'`` and
    ``'nearest-exact'``), choosing source cells exactly as PyTorch does.

    >>> import convscope as cs
    >>> interpolate(cs.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    x = _tensor_arg(input, "input", "interpolate")
    n = x.ndim - 2
    if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
        raise ValueError(
            "align_corners option can only be set with the interpolating modes: "
            "linear | bilinear | bicubic | trilinear"
        )
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = _per_dim(size, n, "output size", x)
        if not all(_int_like(s) for s in sizes):
            raise TypeError(
                "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                f"Tuple[int, int, int], but got size with types {[type(s) for s in sizes]}"
            )
        scales = [None] * n
    elif scale_factor is not None:
        scales = _per_dim(scale_factor, n, "scale_factor", x)
        sizes = [math.floor(h * float(s)) for h, s in zip(x.shape[2:], scales, strict=True)]
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if recompute_scale_factor:
        scales = [None] * n
    if antialias:
        raise ValueError(
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and "
            "requires a 4-D tensor as input"
        )
    if mode not in ("nearest", "nearest-exact") or not 1 <= n <= 3:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: nearest | nearest-exact (got {mode}); convscope implements only these two"
        )
    if min(sizes) <= 0 or min(x.shape[2:]) <= 0:
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input "
            f"{tuple(x.shape[2:])} and output {tuple(sizes)}"
        )
    segments = [
        _pool.nearest_segments(h, o, s, exact=mode == "nearest-exact", shortcuts=n == 2)
        for h, o, s in zip(x.shape[2:], sizes, scales, strict=True)
    ]
    return _nn_ops.segment_means(x, segments, "UpsampleNearest")
