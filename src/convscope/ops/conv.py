"""The convolution primitive: one N-d function behind every convolution of the library.

``conv_general`` correlates a batched input ``(N, C, *S)`` with a kernel ``(O, C/groups, *K)``
given per-side padding (negative crops), stride, kernel dilation, input dilation (zeros
inserted between input cells, which is what a transposed convolution needs) and groups.
1-D, 2-D, 3-D, transposed convolutions and (later) gradients are all calls of it.

Algorithms are interchangeable implementations of the primitive; ``algorithm=None`` lets
:func:`select_algorithm` choose.  Each works in tiles that fit the workspace budget.

>>> import numpy as np
>>> from convscope.ops.conv import conv_general
>>> x = np.arange(5.0).reshape(1, 1, 5)
>>> w = np.ones((1, 1, 3))
>>> conv_general(x, w, stride=(1,), padding=((1, 1),), dilation=(1,))
array([[[1., 3., 6., 9., 7.]]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..geometry import conv_output_size
from . import direct, unfold_gemm
from .tiling import ConvGeometry
from .workspace import get_workspace_budget

Algorithm = Callable[[np.ndarray, np.ndarray, ConvGeometry, int, np.ndarray, int], None]

ALGORITHMS: dict[str, Algorithm] = {
    "unfold": unfold_gemm.run,
    "direct": direct.run,
}


def select_algorithm(geom: ConvGeometry, groups: int, dtype: np.dtype) -> str:
    """Pick an algorithm from the shapes (unfold + BLAS GEMM is the general workhorse)."""
    return "unfold"


def conv_general(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    input_dilation: Sequence[int] | None = None,
    groups: int = 1,
    algorithm: str | None = None,
    workspace_bytes: int | None = None,
) -> np.ndarray:
    """Grouped N-d cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/groups, *K).

    Arguments must already be valid (the public layers validate with PyTorch's errors);
    this function only checks that the ranks and channel counts fit together.  Returns a new
    array of ``x.dtype`` with shape ``(N, O, *output)``.
    """
    n = x.ndim - 2
    if w.ndim != n + 2 or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise RuntimeError(
            f"conv_general: input {x.shape} and weight {w.shape} do not fit with groups={groups}"
        )
    input_dilation = tuple(input_dilation or (1,) * n)
    dilated = tuple((s - 1) * i + 1 for s, i in zip(x.shape[2:], input_dilation, strict=True))
    geom = ConvGeometry(
        input_shape=x.shape,
        kernel_size=w.shape[2:],
        stride=tuple(stride),
        pads=tuple((int(a), int(b)) for a, b in padding),
        dilation=tuple(dilation),
        input_dilation=input_dilation,
        output_size=conv_output_size(dilated, w.shape[2:], stride, padding, dilation),
    )
    out = np.zeros((x.shape[0], w.shape[0], *geom.output_size), dtype=x.dtype)
    if out.size == 0 or x.shape[1] == 0:
        return out
    name = algorithm or select_algorithm(geom, groups, x.dtype)
    if name not in ALGORITHMS:
        raise ValueError(
            f"unknown convolution algorithm {name!r}; choose from {sorted(ALGORITHMS)}"
        )
    budget = get_workspace_budget() if workspace_bytes is None else int(workspace_bytes)
    ALGORITHMS[name](x, w, geom, groups, out, budget)
    return out
