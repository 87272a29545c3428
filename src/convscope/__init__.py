"""convscope: PyTorch's convolution layers, exactly, on NumPy.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> conv = nn.Conv2d(3, 16, 3, padding=1)
>>> conv(cs.rand(4, 3, 32, 32)).shape
(4, 16, 32, 32)
"""

from . import geometry, nn, optim
from ._dtypes import (
    bool,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import arange, as_tensor, empty, from_numpy, full, ones, tensor, zeros
from .io import load, load_torch, save
from .ops.workspace import get_workspace_budget, set_workspace_budget, workspace_budget
from .random import manual_seed, rand, randint, randn
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "arange",
    "as_tensor",
    "bool",
    "double",
    "empty",
    "enable_grad",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "geometry",
    "get_default_dtype",
    "get_workspace_budget",
    "half",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_grad_enabled",
    "load",
    "load_torch",
    "long",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "optim",
    "rand",
    "randint",
    "randn",
    "save",
    "set_default_dtype",
    "set_grad_enabled",
    "set_workspace_budget",
    "short",
    "tensor",
    "uint8",
    "workspace_budget",
    "zeros",
]
