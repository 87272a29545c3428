"""PyTorch-exact convolution stacks over dask arrays bigger than memory, and folders of media
as tasks on a Dask cluster.

``apply(module, x)`` runs a module made of local layers on a chunked ``(N, C, *spatial)``
dask array and returns a lazy dask array equal to ``module(x.compute())``: each output block
reads its input window plus the halo its receptive field needs and runs convscope's own
functions and modules on it.

>>> import numpy as np
>>> import dask.array as da
>>> import convscope as cs
>>> import convscope.nn as nn
>>> import convscope.dask as csd
>>> _ = cs.manual_seed(0)
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
...                     nn.MaxPool2d(2)).double()
>>> x = da.random.default_rng(0).random((2, 1, 30, 40), chunks=(1, 1, 7, 9))
>>> y = csd.apply(net, x)
>>> y.shape
(2, 4, 15, 20)
>>> bool(np.allclose(y.compute(scheduler="sync"), net(cs.tensor(x.compute())).numpy()))
True
"""

from __future__ import annotations

from typing import Any

from .chain import run_steps
from .functional import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from .graph import Source
from .modules import local_layers, steps_of


def _checked(x: Any, name: str = "x") -> Any:
    import dask.array as da

    if isinstance(x, Source):
        return x
    if not isinstance(x, da.Array):
        raise TypeError(
            f"convscope.dask: {name} must be a dask.array.Array, not {type(x).__name__}"
        )
    if x.ndim < 3:
        raise RuntimeError(
            f"convscope.dask expects a (N, C, *spatial) array, but got shape {list(x.shape)}"
        )
    return x.rechunk({1: -1}) if x.numblocks[1] != 1 else x


def apply(module: Any, x: Any) -> Any:
    """``module(x)`` for a dask array ``x`` of shape ``(N, C, *spatial)``, lazily.

    ``x`` may also be a :class:`Source` (read window by window, e.g. from a file).
    ``module`` is a convscope layer or ``Sequential`` of local layers (convolutions and
    transposed convolutions with any stride, dilation, groups, padding and padding mode,
    pooling, eval-mode batch norm, activations, padding layers, eval-mode dropout); a global
    layer is refused with a ``TypeError`` before anything runs.  Chunks may have any sizes
    along the batch and spatial axes; the channel axis is gathered into one chunk.
    """
    layers = local_layers(module)
    x = _checked(x)
    return run_steps(x, [steps_of(layer) for layer in layers])


__all__ = [
    "Source",
    "apply",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "local_layers",
]
