"""Which layers of a module are local (each output reads a bounded neighbourhood of the input),
and how each one runs over a dask array.  Anything else is refused up front with a
``TypeError`` naming the layer.

>>> import convscope.nn as nn
>>> [type(m).__name__ for m in local_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))]
['Conv2d', 'ReLU']
>>> local_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()))
Traceback (most recent call last):
    ...
TypeError: convscope.dask cannot run layer '1' Flatten(start_dim=1, end_dim=-1) on chunks: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import nn
from ..nn import conv, dropout, linear, normalization, padding, pooling
from . import steps

_POINTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.ReLU6,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.SiLU,
    nn.Mish,
    nn.Hardtanh,
    nn.ELU,
    nn.Softplus,
    nn.PReLU,
    nn.LocalResponseNorm,
)


def _run_conv(module: Any) -> Callable[[Any], Any]:
    function = module._conv()
    weight = module.weight.data
    bias = None if module.bias is None else module.bias.data
    if module.transposed:
        return lambda x: steps.conv_transpose(
            x,
            function,
            weight,
            bias,
            module.stride,
            module.padding,
            module.output_padding,
            module.groups,
            module.dilation,
        )
    return lambda x: steps.conv(
        x,
        function,
        weight,
        bias,
        module.stride,
        module.padding,
        module.dilation,
        module.groups,
        module.padding_mode,
    )


def _run_pad(module: Any) -> Callable[[Any], Any]:
    amounts = list(module.padding)
    pairs = tuple((amounts[2 * i], amounts[2 * i + 1]) for i in reversed(range(len(amounts) // 2)))
    return lambda x: steps.pad_array(x, pairs, module._mode, module.value)


#: (base classes, why a layer of them is global after all (or None), how to run it)
_KINDS: list[tuple[type, Callable[[Any], str | None], Callable[[Any], Callable[[Any], Any]]]] = [
    (conv._ConvNd, lambda m: None, _run_conv),
    (
        pooling._MaxPoolNd,
        lambda m: "it returns indices" if m.return_indices else None,
        lambda m: lambda x: steps.pool(x, m),
    ),
    (pooling._AvgPoolNd, lambda m: None, lambda m: lambda x: steps.pool(x, m)),
    (
        normalization._BatchNorm,
        lambda m: (
            "it is in training mode (batch statistics)"
            if m.training or m.running_mean is None
            else None
        ),
        lambda m: lambda x: steps.pointwise(x, m),
    ),
    (padding._PadNd, lambda m: None, _run_pad),
    (_POINTWISE, lambda m: None, lambda m: lambda x: steps.pointwise(x, m)),
    (
        (dropout.Dropout, dropout._ChannelDropout),
        lambda m: "it is in training mode (random)" if m.training else None,
        lambda m: lambda x: x,
    ),
    (linear.Identity, lambda m: None, lambda m: lambda x: x),
]


def _own_forward(module: Any, bases: Any) -> bool:
    """True when ``module`` is one of ``bases`` and runs a library forward (not an override)."""
    owner = next(k for k in type(module).__mro__ if "forward" in vars(k))
    return isinstance(module, bases) and owner.__module__.startswith("convscope.nn.")


def _refuse(path: str, module: Any, why: str) -> TypeError:
    where = f"layer {path!r} " if path else ""
    return TypeError(
        f"convscope.dask cannot run {where}{module!r} on chunks: {why}; only local layers "
        "(convolutions, pooling, eval-mode batch norm, activations, padding, Sequential of "
        "these) can"
    )


def local_layers(module: Any, path: str = "") -> list[Any]:
    """The layers ``module`` runs, in order, after checking that each is local."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        out = []
        for name, child in module._modules.items():
            out.extend(local_layers(child, f"{path}.{name}" if path else name))
        return out
    for bases, global_reason, _ in _KINDS:
        if _own_forward(module, bases):
            why = global_reason(module)
            if why is not None:
                raise _refuse(path, module, why)
            return [module]
    raise _refuse(path, module, "each of its outputs may read the whole input")


def runner(module: Any) -> Callable[[Any], Any]:
    """How one local layer (see :func:`local_layers`) runs over a dask array."""
    for bases, _, run in _KINDS:
        if _own_forward(module, bases):
            return run(module)
    raise _refuse("", module, "it is not a local layer")
