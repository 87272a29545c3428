"""Differentiable convolution and padding: the array kernels of ``ops`` plus their adjoints.

Every gradient is again a call of the primitive (see ``ops.conv.conv_general_backward``), and
only the gradients some parent needs are computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ops import conv as conv_ops
from ..ops import pad as pad_ops
from ..tensor import Tensor
from .engine import attach, is_grad_enabled


def conv(
    x: Tensor,
    w: Tensor,
    *,
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    input_dilation: Sequence[int] | None = None,
    groups: int = 1,
    bias: Tensor | None = None,
) -> Tensor:
    """``conv_general`` on tensors (plus ``bias`` per output channel, added in place on the
    fresh output), recorded for autograd."""
    params = {
        "stride": tuple(stride),
        "padding": tuple(padding),
        "dilation": tuple(dilation),
        "input_dilation": input_dilation,
        "groups": groups,
    }
    xa, wa = x.data, w.data
    # a result that a backward pass will use is computed precisely (see ops.algorithms)
    precise = is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, w, bias))
    out = conv_ops.conv_general(xa, wa, precise=precise, **params)
    if bias is not None:
        out += bias.data.reshape((-1,) + (1,) * (out.ndim - 2))

    def rule(grad: np.ndarray, needs: tuple[bool, ...]) -> tuple:
        grads = conv_ops.conv_general_backward(xa, wa, grad, needs=needs[:2], **params)
        if bias is None:
            return grads
        spatial = (0, *range(2, grad.ndim))
        return (*grads, grad.sum(axis=spatial) if needs[2] else None)

    parents = (x, w) if bias is None else (x, w, bias)
    return attach(Tensor(out), parents, rule, "Convolution")


def transpose_kernel(w: Tensor, groups: int) -> Tensor:
    """A transposed-convolution weight as the equivalent convolution weight (self-adjoint)."""
    return attach(
        Tensor(conv_ops.transpose_kernel(w.data, groups)),
        (w,),
        lambda g, n: (conv_ops.transpose_kernel(g, groups),),
        "TransposeKernel",
    )


def pad(x: Tensor, pairs: Sequence[tuple[int, int]], mode: str, value: float) -> Tensor:
    """Padding (any mode) of the trailing dimensions, recorded for autograd."""
    shape = x.shape
    out = pad_ops.pad(x.data, pairs, mode, value)
    return attach(
        Tensor(out),
        (x,),
        lambda g, n: (pad_ops.pad_backward(g, shape, pairs, mode),),
        f"{mode.capitalize()}Pad",
    )
