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

#: a layer bound to its input: (shape, dtype) -> steps
Factory = Callable[[tuple, Any], list]

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


def _conv(module: Any) -> Factory:
    function = module._conv()
    weight = module.weight.data
    bias = None if module.bias is None else module.bias.data
    if module.transposed:
        return lambda shape, dtype: steps.conv_transpose_steps(
            shape,
            dtype,
            function,
            weight,
            bias,
            module.stride,
            module.padding,
            module.output_padding,
            module.groups,
            module.dilation,
        )
    return lambda shape, dtype: steps.conv_steps(
        shape,
        dtype,
        function,
        weight,
        bias,
        module.stride,
        module.padding,
        module.dilation,
        module.groups,
        module.padding_mode,
    )


def _pad(module: Any) -> Factory:
    amounts = list(module.padding)
    pairs = tuple((amounts[2 * i], amounts[2 * i + 1]) for i in reversed(range(len(amounts) // 2)))
    return lambda shape, dtype: steps.pad_steps(shape, dtype, pairs, module._mode, module.value)


def _pool(module: Any) -> Factory:
    return lambda shape, dtype: [steps.Pool(shape, module=module, dtype_in=dtype)]


def _pointwise(module: Any) -> Factory:
    return lambda shape, dtype: [steps.Pointwise(shape, module=module, dtype_in=dtype)]


def _identity(module: Any) -> Factory:
    return lambda shape, dtype: []


#: (base classes, why a layer of them is global after all (or None), how to run it)
_KINDS: list[tuple[Any, Callable[[Any], str | None], Callable[[Any], Factory]]] = [
    (conv._ConvNd, lambda m: None, _conv),
    (
        pooling._MaxPoolNd,
        lambda m: "it returns indices" if m.return_indices else None,
        _pool,
    ),
    (pooling._AvgPoolNd, lambda m: None, _pool),
    (
        normalization._BatchNorm,
        lambda m: (
            "it is in training mode (batch statistics)"
            if m.training or m.running_mean is None
            else None
        ),
        _pointwise,
    ),
    (padding._PadNd, lambda m: None, _pad),
    (_POINTWISE, lambda m: None, _pointwise),
    (
        (dropout.Dropout, dropout._ChannelDropout),
        lambda m: "it is in training mode (random)" if m.training else None,
        _identity,
    ),
    (linear.Identity, lambda m: None, _identity),
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


def steps_of(module: Any) -> Factory:
    """How one local layer (see :func:`local_layers`) runs: a function of its input's shape
    and dtype returning its steps (window steps and whole-array operations)."""
    for bases, _, run in _KINDS:
        if _own_forward(module, bases):
            return _batched(module, run(module))
    raise _refuse("", module, "it is not a local layer")


def _batched(module: Any, factory: Factory) -> Factory:
    """``factory``, refusing inputs that are not ``(N, C, *spatial)`` with the layer's number
    of spatial dimensions (a 1-D batch is not an unbatched 2-D input here)."""
    dims = getattr(module, "_dims", 0)
    if not dims:
        return factory

    def checked(shape: tuple, dtype: Any) -> list:
        if len(shape) != dims + 2:
            raise RuntimeError(
                f"convscope.dask runs {type(module).__name__} on batched {dims + 2}-D input "
                f"(N, C, *spatial), but got input of size: {list(shape)}"
            )
        return factory(shape, dtype)

    return checked
