"""Adaptive max pooling: the maximum over PyTorch's adaptive windows
``[floor(i*L/out), ceil((i+1)*L/out))`` per spatial dimension, one N-d path.

>>> import convscope as cs
>>> y, i = adaptive_max_pool1d(cs.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0]]]), 2, return_indices=True)
>>> y.tolist(), i.tolist()
([[[5.0, 3.0]]], [[[1, 4]]])
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ...autograd.engine import attach
from ...ops import pool as _pool
from ...tensor import Tensor
from ._common import _tensor_arg, _type_name
from .pooling import _adaptive_sizes

_DTYPES = ("float16", "float32", "float64")


def _adaptive_max(op: str, n: int, input: Any, output_size: Any, return_indices: bool) -> Any:
    x = _tensor_arg(input, "input", op)
    sizes = _adaptive_sizes(op, n, output_size)
    if x.ndim not in (n + 1, n + 2) or 0 in x.shape[-n - 1 :]:
        raise RuntimeError(
            f"{op}(): Expected {n + 1}D or {n + 2}D tensor with non-zero sizes for non-batch "
            f"dimensions, but got {list(x.shape)}"
        )
    if x.dtype.name not in _DTYPES:
        raise NotImplementedError(f"\"{op}\" not implemented for '{_type_name(x.dtype)}'")
    spatial = x.shape[-n:]
    out_sizes = tuple(h if s is None else s for h, s in zip(spatial, sizes, strict=True))
    windows = [_pool.adaptive_segments(h, o) for h, o in zip(spatial, out_sizes, strict=True)]
    lead = x.shape[:-n]
    data = x.data.reshape(-1, *spatial)
    values = np.empty((data.shape[0], *out_sizes), dtype=x.dtype)
    flat = np.empty((data.shape[0], *out_sizes), dtype=np.int64)
    strides = np.cumprod((1, *spatial[::-1]))[:-1][::-1]  # flat index of a spatial position
    for cell in itertools.product(*(range(o) for o in out_sizes)):
        starts = [int(w[0][i]) for w, i in zip(windows, cell, strict=True)]
        lengths = [int(w[1][i]) for w, i in zip(windows, cell, strict=True)]
        box = data[(slice(None), *(slice(a, a + k) for a, k in zip(starts, lengths, strict=True)))]
        rows = box.reshape(box.shape[0], -1)
        where = rows.argmax(axis=1)
        values[(slice(None), *cell)] = rows[np.arange(rows.shape[0]), where]
        local = np.unravel_index(where, lengths)
        flat[(slice(None), *cell)] = sum(
            (a + p) * int(s) for a, p, s in zip(starts, local, strides, strict=True)
        )
    out_shape = (*lead, *out_sizes)
    indices = flat.reshape(out_shape)
    shape = x.shape

    def rule(g: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        grad = np.zeros((math.prod(lead), math.prod(spatial)), dtype=g.dtype)
        rows = np.repeat(np.arange(grad.shape[0]), math.prod(out_sizes))
        np.add.at(grad, (rows, indices.reshape(-1)), g.reshape(-1))
        return (grad.reshape(shape),)

    y = attach(Tensor(values.reshape(out_shape)), (x,), rule, "AdaptiveMaxPool")
    return (y, Tensor(indices)) if return_indices else y


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max over ``(N, C, L)`` or ``(C, L)``; indices are positions in ``L``."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max over ``(N, C, H, W)``; indices flat in ``H*W``; ``None`` keeps a size.

    >>> import convscope as cs
    >>> adaptive_max_pool2d(cs.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max over ``(N, C, D, H, W)``; indices flat in ``D*H*W``."""
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)
