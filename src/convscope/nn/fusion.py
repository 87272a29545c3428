"""Inference fusion: convolution -> BatchNorm -> (+ residual) -> activation as one pass;
training fusion: BatchNorm -> ReLU/ReLU6 as one operation.

In evaluation mode with no gradient to record, the BatchNorm after a convolution is a
per-channel affine map, and it, the convolution's bias, a residual addition and a simple
activation can all be applied in place on the convolution's fresh output
(:mod:`convscope.ops.epilogue`) instead of as separate layers, each making a full-size copy.
The modules keep PyTorch's semantics: the fused path runs only when nothing could tell the
difference — every module involved in eval mode (BatchNorm with running statistics), no
tensor requiring a gradient while gradients are recorded, no forward hooks or replaced
``forward`` (so hooks, summaries and explanations see every layer), and a float32/float64
input. Otherwise the layers run one by one, as written.

``Sequential`` fuses its runs of ``Conv*, BatchNorm*, activation`` by itself; model code with
explicit calls (ResNet's blocks) uses :func:`conv_bn_act`.

With batch statistics (training), a plain BatchNorm followed by a plain ReLU or ReLU6 in a
``Sequential`` runs as one recorded operation: the activation applied in place on the
normalised output and its backward (the gradient gated by that output) taken inside the
normalisation's two backward passes, one full-size array and one pass fewer each way
(MobileNetV2's SGD step at batch 8: the separate ReLU6 backward alone took 17% of it).

>>> import convscope as cs
>>> import convscope.nn as nn
>>> block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()).eval()
>>> x = cs.rand(2, 3, 8, 8)
>>> with cs.no_grad():
...     fused = block(x)
...     separate = block[2](block[1](block[0](x)))
>>> bool((fused - separate).abs().max() < 1e-5)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.engine import is_grad_enabled
from ..ops import algorithms, elementwise, epilogue, jit
from ..ops import normalization as ops_normalization
from ..ops import pool as pool_ops
from ..ops.matmul import FEW_ROWS, matmul
from ..ops.threads import get_num_threads
from ..tensor import Tensor
from .container import Sequential
from .conv import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    _ConvNd,
)
from .linear import Linear
from .module import Module
from .normalization import LayerNorm, _BatchNorm
from .pooling import AdaptiveAvgPool2d, MaxPool1d, MaxPool2d, MaxPool3d

# activation class name -> epilogue name; matched on the exact convscope class
_ACTIVATIONS = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "Hardswish": "hardswish",
    "SiLU": "silu",
    "Hardsigmoid": "hardsigmoid",
    "Sigmoid": "sigmoid",
    "GELU": "gelu",
    "Tanh": "tanh",
}


_CONV_TYPES = (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)


def _plain(module: Module) -> bool:
    """No hooks and no instance-level ``forward`` (a summary or a user may have wrapped it)."""
    return (
        not module._forward_hooks
        and not module._forward_pre_hooks
        and "forward" not in module.__dict__
    )


def _is_conv(module: Any) -> bool:
    """A convscope convolution layer as shipped, or a subclass computing as it does (its own
    constructor only: torchvision's ``Conv3DSimple`` in r3d_18)."""
    kind = type(module)
    for base in _CONV_TYPES:
        if issubclass(kind, base):
            return (
                kind.forward is base.forward
                and kind._convolve is base._convolve
                and kind._conv is base._conv
                and _plain(module)
            )
    return False


def _is_eval_batch_norm(module: Any) -> bool:
    return (
        isinstance(module, _BatchNorm)
        and type(module).forward is _BatchNorm.forward
        and not module.training
        and module.running_mean is not None
        and module.running_var is not None
        and _plain(module)
    )


def _is_batch_statistics_norm(module: Any) -> bool:
    """A plain BatchNorm (no subclass with its own forward) normalising with the batch's own
    statistics (training, or no running statistics)."""
    return (
        isinstance(module, _BatchNorm)
        and type(module).forward is _BatchNorm.forward
        and module._uses_batch_statistics()
        and _plain(module)
    )


#: activations whose backward the normalisation's backward can take in (ops.normalization.Gate)
_NORM_ACTIVATIONS = ("relu", "relu6")


def _activation_of_type(kind: type) -> str | None:
    """The epilogue name of the exact convscope activation class ``kind``, else ``None``."""
    if kind not in _activation_types:
        from .. import nn

        name = _ACTIVATIONS.get(kind.__name__)
        _activation_types[kind] = name if kind is getattr(nn, kind.__name__, None) else None
    return _activation_types[kind]


_activation_types: dict[type, str | None] = {}


def activation_name(module: Any) -> str | None:
    """The epilogue name of ``module`` if it is a plain convscope activation the epilogue can
    apply here, else ``None``."""
    name = _activation_of_type(type(module))
    if name is None:
        return None
    if name == "gelu" and module.approximate != "none":
        return None
    if not _plain(module) or not epilogue.supported(name):
        return None
    return name


def _needs_graph(tensors: Sequence[Any]) -> bool:
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _affine(conv: _ConvNd, bn: _BatchNorm | None, dtype: np.dtype) -> tuple[Any, Any]:
    """Per-channel ``(scale, shift)`` of BatchNorm after the convolution's bias, computed in
    float64 (``None`` where the identity)."""
    bias = conv.bias
    if bn is None:
        return None, None if bias is None else bias.data.astype(np.float64)
    weight, shift = bn.weight, bn.bias
    return epilogue.batch_norm_affine(
        bn.running_var.data,
        bn.running_mean.data,
        bn.eps,
        None if weight is None else weight.data,
        None if shift is None else shift.data,
        None if bias is None else bias.data,
        dtype,
    )


def _fusable(x: Any, conv: Any, bn: Any, act: Any, residual: Any) -> tuple[bool, str | None]:
    if not _is_conv(conv):
        return False, None
    if bn is not None and not _is_eval_batch_norm(bn):
        return False, None
    name = None if act is None else activation_name(act)
    if act is not None and name is None:
        return False, None
    params = [conv.weight, conv.bias]
    if bn is not None:
        params += [bn.weight, bn.bias]
    if _needs_graph([x, residual, *params]):
        return False, None
    dtype = getattr(x, "dtype", None)
    if dtype is None or np.dtype(dtype) not in (np.float32, np.float64):
        return False, None
    return True, name


def conv_bn_act(
    x: Any,
    conv: Module,
    bn: Module | None = None,
    act: Module | None = None,
    residual: Any = None,
) -> Tensor:
    """``act(bn(conv(x)) + residual)`` (each part optional but ``conv``), fused into the
    convolution's output when nothing can tell the difference (see the module docstring),
    else computed layer by layer.

    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> conv, bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4).eval()
    >>> x = cs.rand(1, 4, 6, 6)
    >>> with cs.no_grad():
    ...     y = conv_bn_act(x, conv, bn, nn.ReLU(), residual=x)
    ...     z = nn.ReLU()(bn(conv(x)) + x)
    >>> bool((y - z).abs().max() < 1e-5)
    True
    """
    fusable, name = _fusable(x, conv, bn, act, residual)
    if fusable:
        y = conv._convolve(x, None)
        out = y.data
        ranks_ok = bn is None or out.ndim in bn._ranks
        same_shape = residual is None or np.shape(residual) == out.shape
        if ranks_ok and same_shape and out.flags.c_contiguous:
            scale, shift = _affine(conv, bn, out.dtype)
            batched = out if out.ndim == conv._dims + 2 else out[None]
            extra = None if residual is None else np.asarray(getattr(residual, "data", residual))
            if extra is not None and extra.ndim != batched.ndim:
                extra = extra[None]
            epilogue.apply(batched, scale=scale, shift=shift, residual=extra, activation=name)
            return y
        if conv.bias is not None:  # cannot fuse after all: finish the layers one by one
            y = y + conv.bias.reshape((-1,) + (1,) * conv._dims)
    else:
        y = conv(x)
    if bn is not None and residual is None and act is not None:
        # batch statistics (training): BatchNorm and ReLU/ReLU6 may still run as one
        return run_recorded([bn, act], y)
    if bn is not None:
        y = bn(y)
    if residual is not None:
        y = y + residual
    if act is not None:
        y = act(y)
    return y


POOLED_GROUP_BYTES = 8 << 20
"""Convolution output :func:`conv_bn_act_pool` lets exist at a time (whole samples, at least
one): ResNet's stem at batch 8 and 224x224 makes a 24.5 MiB map that its max-pool shrinks
to a quarter."""


def conv_bn_act_pool(x: Any, conv: Module, bn: Any, act: Any, pool: Module) -> Any:
    """``pool(conv_bn_act(x, conv, bn, act))``; at inference (everything fusable, ``pool`` a
    plain max-pool) a few samples at a time, so that the convolution's full-size output never
    exists, only the pooled one.  Every sample gets the same arithmetic either way.

    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8).eval()
    >>> relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    >>> x = cs.rand(4, 3, 16, 16)
    >>> with cs.no_grad():
    ...     grouped = conv_bn_act_pool(x, conv, bn, relu, pool)
    ...     whole = pool(conv_bn_act(x, conv, bn, relu))
    >>> bool((grouped == whole).numpy().all()), grouped.shape
    (True, (4, 8, 8, 8))
    """
    data = getattr(x, "data", None)
    if (
        not isinstance(x, Tensor)
        or not _fusable(x, conv, bn, act, None)[0]
        or type(pool) not in (MaxPool1d, MaxPool2d, MaxPool3d)
        or pool.return_indices
        or not _plain(pool)
        or data.ndim != conv._dims + 2
        or data.shape[0] < 2
        or not data.flags.c_contiguous
        or algorithms.get_autotune()  # it times per batch size: groups could choose others
    ):
        return pool(conv_bn_act(x, conv, bn, act))
    n = data.shape[0]
    first = conv_bn_act(Tensor(data[:1]), conv, bn, act)
    group = max(1, POOLED_GROUP_BYTES // max(1, first.data.nbytes))
    pooled = pool(first).data
    del first
    out = np.empty((n, *pooled.shape[1:]), pooled.dtype)
    out[:1] = pooled
    for start in range(1, n, group):
        part = conv_bn_act(Tensor(data[start : start + group]), conv, bn, act)
        out[start : start + group] = pool(part).data
        del part
    return Tensor(out)


def run_sequence(modules: Sequence[Module], input: Any) -> Any:
    """Apply ``modules`` in order like ``Sequential``, fusing each ``Conv*, BatchNorm*,
    activation`` run (BatchNorm or activation may be absent) that :func:`conv_bn_act` can.

    Plain nested ``Sequential`` modules (no hooks) run inline, their layers one after another
    in this loop, so that each intermediate result goes as soon as the next layer has used it
    (called as modules, a stage's input would stay referenced by its call until the whole
    stage ends); fusion never spans the boundary of a nested ``Sequential``.
    """
    modules = _inline(modules)
    i, count = 0, len(modules)
    while i < count:
        module = modules[i]
        if module is None:  # the boundary of an inlined Sequential
            i += 1
            continue
        if _is_conv(module):
            bn = modules[i + 1] if i + 1 < count and _is_eval_batch_norm(modules[i + 1]) else None
            after = i + 1 + (bn is not None)
            act = modules[after] if after < count and activation_name(modules[after]) else None
            if bn is not None or act is not None:
                input = conv_bn_act(input, module, bn, act)
                i = after + (act is not None)
                continue
        name = _norm_activation(modules, i)
        if name is not None:
            input = module._normalize(input, name)
            i += 2
            continue
        if i + 1 < count and _is_plain_linear(module):
            if i + 2 < count and _is_plain_linear(modules[i + 2]):
                result = mlp(input, module, modules[i + 1], modules[i + 2])
                if result is not None:
                    input = result
                    i += 3
                    continue
            name = activation_name(modules[i + 1])
            if name is not None:
                input = linear_act(input, module, name, modules[i + 1])
                i += 2
                continue
        if _copies_input(module, input):
            # the layer would copy this view anyway: copy it first, so that the array it
            # views can go before the layer allocates its output (ConvNeXt's channels-last
            # LayerNorm after a Permute holds three activations at once instead of four)
            input = Tensor(np.ascontiguousarray(input.data))
        input = module(input)
        i += 1
    return input


def run_recorded(modules: Sequence[Module], input: Any) -> Any:
    """Apply ``modules`` in order like ``Sequential`` while gradients are recorded: each
    BatchNorm with batch statistics followed by ReLU/ReLU6 runs as one operation (see the
    module docstring), everything else layer by layer."""
    i, count = 0, len(modules)
    while i < count:
        name = _norm_activation(modules, i)
        if name is not None:
            input = modules[i]._normalize(input, name)
            i += 2
            continue
        input = modules[i](input)
        i += 1
    return input


def _norm_activation(modules: Sequence[Any], i: int) -> str | None:
    """The activation (``"relu"``, ``"relu6"``) that ``modules[i]``, a plain BatchNorm with
    batch statistics, may run fused with: the plain activation right after it."""
    if i + 1 >= len(modules) or not _is_batch_statistics_norm(modules[i]):
        return None
    name = activation_name(modules[i + 1])
    return name if name in _NORM_ACTIVATIONS else None


def run_handed_over(modules: Sequence[Module], held: list[Any]) -> Any:
    """:func:`run_sequence` on ``held.pop()``: a caller that hands its only reference to an
    input over this way lets it go as soon as the first module has used it.

    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> held = [cs.ones(2, 3)]
    >>> run_handed_over([nn.Linear(3, 4), nn.Sequential(nn.ReLU())], held).shape, held
    ((2, 4), [])
    """
    return run_sequence(modules, held.pop())


def _inline(modules: Sequence[Module]) -> list[Any]:
    """``modules`` with each plain nested ``Sequential`` replaced by its layers (inlined the
    same way), between two ``None`` boundaries."""
    flat: list[Any] = []
    for module in modules:
        if type(module) is Sequential and _plain(module):
            flat += [None, *_inline(list(module._modules.values())), None]
        else:
            flat.append(module)
    return flat


def _copies_input(module: Module, input: Any) -> bool:
    """``module`` is a plain LayerNorm, which makes a non-contiguous ``input`` contiguous
    before normalising it, and ``input`` is such a tensor with no graph to keep."""
    data = getattr(input, "data", None)
    return (
        type(module) is LayerNorm
        and _plain(module)
        and isinstance(input, Tensor)
        and isinstance(data, np.ndarray)
        and not data.flags.c_contiguous
        and not _needs_graph([input])
    )


MLP_HIDDEN_BYTES = 8 << 20
"""Hidden activations :func:`mlp` holds at once: ConvNeXt's first stage at batch 8 has a
(25088, 384) float32 hidden layer (37 MiB), which row blocks of this size replace."""


_ACTIVATION_PIECE_BYTES = 1 << 20  # an activation layer's input at a time in mlp's blocks

MLP_MIN_GEMM = 1 << 22
"""Least ``rows x hidden x min(in, out)`` product of a block's GEMMs in :func:`mlp`: the BLAS
sums small products in another order (OpenBLAS's small-matrix kernels), so smaller blocks
could change the last bit of the result (measured: 13-row blocks did, blocks of 4 M and more
multiply-adds gave the layers' values exactly)."""


def mlp(
    x: Any, first: Module, act: Module, second: Module, hidden_bytes: int | None = None
) -> Tensor | None:
    """``second(act(first(x)))`` for two plain Linear layers around a plain elementwise
    activation layer, computed in blocks of rows so that only one block of the hidden layer
    exists at a time (``hidden_bytes``, default :data:`MLP_HIDDEN_BYTES`, unless exactness
    needs more rows per block: see :data:`MLP_MIN_GEMM`); the same
    GEMMs, bias additions and activation per row as the layers one by one, so the same
    values.  The activation runs in place where the epilogue can apply it, else as the layer
    on each block.  ``None`` when this cannot apply or would make a single block (a graph to
    record, another dtype, a non-contiguous input, mismatched sizes, a small input, another
    kind of layer in the middle): run the layers then.

    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 32))
    >>> x = cs.rand(4, 1024, 32)
    >>> with cs.no_grad():
    ...     blocked = mlp(x, net[0], net[1], net[2], hidden_bytes=1024 * 128 * 4)
    ...     separate = net[2](net[1](net[0](x)))
    >>> bool((blocked == separate).numpy().all()), blocked.shape
    (True, (4, 1024, 32))
    """
    data = getattr(x, "data", None)
    params = [first.weight, first.bias, second.weight, second.bias]
    if (
        not isinstance(x, Tensor)
        or not isinstance(data, np.ndarray)
        or data.dtype not in (np.float32, np.float64)
        or data.ndim < 2
        or not data.flags.c_contiguous
        or data.shape[-1] != first.in_features
        or first.out_features != second.in_features
        or any(p is not None and p.dtype != data.dtype for p in params)
        or _needs_graph([x, *params])
        or _activation_of_type(type(act)) is None
        or not _plain(act)
        or min(first.in_features, first.out_features, second.out_features) == 0
    ):
        return None
    name = activation_name(act)  # None: not in place here, the layer runs on each block
    rows = data.reshape(-1, data.shape[-1])
    count, hidden = rows.shape[0], first.out_features
    limit = MLP_HIDDEN_BYTES if hidden_bytes is None else hidden_bytes
    # every block's GEMMs big enough to be summed as the whole layer's are, and every
    # thread's share of a block's rows past ops.matmul's few-rows order
    least = max(
        -(-MLP_MIN_GEMM // (hidden * min(first.in_features, second.out_features))),
        (FEW_ROWS + 1) * get_num_threads(),
    )
    per_block = max(1, limit // (hidden * data.itemsize))
    blocks = min(-(-count // per_block), count // least)
    if blocks < 2:
        return None  # one block: the layers one by one hold no more
    per_block = -(-count // blocks)  # even blocks (each at least ``least`` rows)
    out = np.empty((count, second.out_features), data.dtype)
    buffer = np.empty((per_block, hidden), data.dtype)
    sub_block = max(1, _ACTIVATION_PIECE_BYTES // (hidden * data.itemsize))
    w1, w2 = first.weight.data.T, second.weight.data.T
    for start in range(0, count, per_block):
        stop = min(count, start + per_block)
        part = buffer[: stop - start]
        matmul(rows[start:stop], w1, out=part)
        if name is not None:
            _bias_activation(part, None if first.bias is None else first.bias.data, name)
        else:
            if first.bias is not None:
                part += first.bias.data
            # the layer's temporaries (several for GELU) in L2-sized pieces
            for piece in range(0, part.shape[0], sub_block):
                rows_of = part[piece : piece + sub_block]
                rows_of[...] = act(Tensor(rows_of)).data
        target = out[start:stop]
        matmul(part, w2, out=target)
        if second.bias is not None:
            target += second.bias.data
    return Tensor(out.reshape(*data.shape[:-1], second.out_features))


def _is_plain_linear(module: Any) -> bool:
    return type(module) is Linear and _plain(module)


def _whole_buffer(data: np.ndarray) -> bool:
    """``data`` is its own buffer, or a reshaped view of all of one (a Linear output on a
    3-D or larger input is a reshape of the GEMM result)."""
    root = data if data.base is None else data.base
    return isinstance(root, np.ndarray) and root.flags.owndata and root.nbytes == data.nbytes


def _bias_activation(rows: np.ndarray, bias: np.ndarray | None, name: str) -> None:
    """``rows[:] = act(rows + bias)`` in place on a C-contiguous 2-D product (bias per
    column): float32 GELU in one pass (:func:`~convscope.ops.elementwise.gelu`'s ``bias``),
    else the bias added, then the epilogue's activation."""
    if name == "gelu" and rows.dtype == np.float32 and bias is not None:
        elementwise.gelu(rows, out=rows, bias=bias)
        return
    if bias is not None:
        rows += bias
    epilogue.apply(rows.reshape(rows.shape[0], 1, -1), activation=name)


def linear_act(x: Any, linear: Module, name: str, act: Module) -> Any:
    """``act(linear(x))`` with the activation applied in place on the Linear layer's fresh
    output when nothing records a graph (an MLP's hidden layer then takes one array, not
    two); float32 GELU takes the layer's bias in the same pass.  Otherwise the two layers
    one after the other."""
    bias = linear.bias
    data = getattr(x, "data", None)
    if (
        name == "gelu"
        and bias is not None
        and isinstance(x, Tensor)
        and isinstance(data, np.ndarray)
        and data.dtype == np.float32
        and data.ndim >= 1
        and bias.dtype == linear.weight.dtype == np.float32
        and bias.shape == (linear.out_features,)
        and not _needs_graph([x, linear.weight, bias])
    ):
        from .functional import linear as product_of

        y = product_of(x, linear.weight)  # the product alone: bias and GELU in one pass below
        product = y.data
        if product.flags.c_contiguous and _whole_buffer(product) and product.ndim >= 1:
            _bias_activation(product.reshape(-1, product.shape[-1]), bias.data, name)
            return y
        return act(Tensor(product + bias.data))
    y = linear(x)
    data = getattr(y, "data", None)
    fresh = (
        isinstance(y, Tensor)
        and not _needs_graph([x, y, linear.weight, linear.bias])
        and isinstance(data, np.ndarray)
        and data.flags.c_contiguous
        and _whole_buffer(data)
        and data.dtype in (np.float32, np.float64)
        and data.ndim >= 2
    )
    if not fresh:
        return act(y)
    epilogue.apply(data.reshape(data.shape[0], 1, -1), activation=name)
    return y


def layer_norm_channels(norm: Module, x: Any) -> Tensor | None:
    """The LayerNorm ``norm``'s normalisation (its ``eps``, weight and bias over ``C``) at
    every position of an ``(N, C, *S)`` tensor, in that layout: a channels-last LayerNorm
    between two permutes (ConvNeXt's ``LayerNorm2d``) without their copies.  The caller
    vouches that this is what ``norm`` stands for there.  ``None`` (run the layers) when a
    graph is recorded or the compiled kernel does not apply.

    >>> import convscope as cs
    >>> import convscope.nn as nn
    >>> norm, x = nn.LayerNorm(4), cs.rand(2, 4, 3, 3)
    >>> with cs.no_grad():
    ...     fast = layer_norm_channels(norm, x)
    ...     slow = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    >>> fast is None or bool(((fast - slow).abs() < 1e-6).numpy().all())
    True
    """
    data = getattr(x, "data", None)
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if (
        not isinstance(norm, LayerNorm)
        or not isinstance(x, Tensor)
        or not isinstance(data, np.ndarray)
        or data.ndim < 3
        or data.dtype not in (np.float32, np.float64)
        or not data.flags.c_contiguous
        or tuple(norm.normalized_shape) != (data.shape[1],)
        or any(p is not None and p.dtype != data.dtype for p in (weight, bias))
        or _needs_graph([x, weight, bias])
    ):
        return None
    values = ops_normalization.layer_norm_channels(
        data.reshape(data.shape[0], data.shape[1], -1),
        None if weight is None else weight.data,
        None if bias is None else bias.data,
        norm.eps,
    )
    return None if values is None else Tensor(values.reshape(data.shape))


def channels_first_block(
    x: Any, conv: Module, norm: Module, first: Module, act: Module, second: Module, scale: Any
) -> Tensor | None:
    """ConvNeXt's block for one sample at inference, ``x + scale * second(act(first(
    norm(conv(x)))))`` with the LayerNorm and both Linear layers applied channels-first (the
    block's permutes dropped): the LayerNorm over the channels at every position
    (:func:`layer_norm_channels`), the Linear layers as ``W @ X`` with positions as columns
    (a few hundred positions: the order OpenBLAS runs fastest, e.g. stage 3 at 224x224
    (1536 x 384) @ (384 x 196) 0.78 ms against 0.90), the bias and activation on the
    hidden layer in place and ``scale`` with the residual in one pass.  The same products
    summed in another order: float32 results within rounding of the layers'.  ``None``
    when this does not apply (run the layers), or when the hidden layer would pass
    :data:`MLP_HIDDEN_BYTES` (the layers then hold it in blocks of rows)."""
    data = getattr(x, "data", None)
    if (
        not isinstance(x, Tensor)
        or not isinstance(data, np.ndarray)
        or data.ndim != 4
        or data.shape[0] != 1
        or data.dtype not in (np.float32, np.float64)
        or not data.flags.c_contiguous
        or not _is_conv(conv)
        or not (_is_plain_linear(first) and _is_plain_linear(second))
        or activation_name(act) is None
        or getattr(scale, "dtype", None) != data.dtype
        or np.size(getattr(scale, "data", None)) not in (1, data.shape[1])
        or any(
            p is not None and p.dtype != data.dtype
            for p in (first.weight, first.bias, second.weight, second.bias)
        )
        or _needs_graph([x, first.weight, first.bias, second.weight, second.bias, scale])
        or type(norm) is not LayerNorm
        or not _plain(norm)
        or tuple(norm.normalized_shape) != (conv.out_channels,)
        or first.in_features != conv.out_channels
        or second.in_features != first.out_features
        or second.out_features != data.shape[1]
        or jit.kernels() is None
        # the hidden layer whole: within mlp's bound (bigger maps take its row blocks)
        or first.out_features * data[0, 0].size * data.itemsize > MLP_HIDDEN_BYTES
    ):
        return None
    y = conv(x)
    normed = layer_norm_channels(norm, y)
    channels = data.shape[1]
    if normed is None or y.shape != data.shape:  # a LayerNorm of another dtype, or a
        # convolution that changes the map's shape: the rest of the layers as they are
        branch = second(act(first(norm(y.permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)
        return x + scale * branch
    columns = normed.data.reshape(channels, -1)
    hidden = matmul(first.weight.data, columns)
    bias = None if first.bias is None else first.bias.data
    epilogue.apply(hidden[None], shift=bias, activation=activation_name(act))
    out = matmul(second.weight.data, hidden)
    gain = np.broadcast_to(scale.data.reshape(-1), (channels,))
    shift = None if second.bias is None else gain * second.bias.data
    epilogue.apply(out[None], scale=gain, shift=shift, residual=data.reshape(1, channels, -1))
    return Tensor(out.reshape(data.shape))


def squeeze_excitation(
    x: Any, pool: Module, squeeze: Module, act: Module, expand: Module, gate: Module
) -> Tensor | None:
    """``x * gate(expand(act(squeeze(pool(x)))))`` (EfficientNet's and MobileNetV3's channel
    attention) at inference with the 1x1 convolutions on the pooled ``(N, C)`` vector as two
    small products and the activations in place: six layer calls (about 200 us of
    bookkeeping at batch 1, a 16th of EfficientNet-B0) become a handful of array
    operations.  The global mean as the adaptive pool takes it.  ``None`` when this does not
    apply (run the layers)."""
    data = getattr(x, "data", None)
    convs = (squeeze, expand)
    if (
        not isinstance(x, Tensor)
        or not isinstance(data, np.ndarray)
        or data.ndim != 4
        or data.dtype not in (np.float32, np.float64)
        or not data.size
        or type(pool) is not AdaptiveAvgPool2d
        or not _plain(pool)
        or tuple(np.broadcast_to(pool.output_size, (2,))) != (1, 1)
        or not all(type(c) is Conv2d and _plain(c) for c in convs)
        or any(
            c.kernel_size != (1, 1)
            or c.stride != (1, 1)
            or c.groups != 1
            or c.padding_mode != "zeros"
            or c.padding not in ((0, 0), "valid")
            for c in convs
        )
        or squeeze.in_channels != data.shape[1]
        or expand.in_channels != squeeze.out_channels
        or expand.out_channels != data.shape[1]
        or any(p is not None and p.dtype != data.dtype for c in convs for p in (c.weight, c.bias))
        or activation_name(act) is None
        or activation_name(gate) is None
        or _needs_graph([x, *(p for c in convs for p in (c.weight, c.bias))])
    ):
        return None
    n, c = data.shape[:2]
    # the adaptive pool's global mean: summed in the compute dtype, divided, rounded back
    pooled = pool_ops.segment_means(
        data, [pool_ops.adaptive_segments(s, 1) for s in data.shape[2:]]
    )
    vector = pooled.reshape(n, c)
    for conv, layer in ((squeeze, act), (expand, gate)):
        vector = matmul(vector, conv.weight.data.reshape(conv.out_channels, -1).T)
        if conv.bias is not None:
            vector += conv.bias.data
        epilogue.apply(vector[:, :, None], activation=activation_name(layer))
    return Tensor(vector.reshape(n, c, 1, 1) * data)
