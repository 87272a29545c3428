"""convscope: PyTorch's convolution layers, exactly, on NumPy.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> conv = nn.Conv2d(3, 16, 3, padding=1)
>>> conv(cs.rand(4, 3, 32, 32)).shape
(4, 16, 32, 32)
"""

from . import geometry
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
from .ops.algorithms import (
    autotune_cache,
    clear_autotune_cache,
    conv_algorithm,
    get_autotune,
    get_conv_algorithm,
    record_conv_algorithms,
    set_autotune,
    set_conv_algorithm,
)
from .ops.threads import get_num_threads, num_threads, set_num_threads
from .ops.workspace import get_workspace_budget, set_workspace_budget, workspace_budget
from .random import manual_seed, rand, randint, randn
from .tensor import Tensor
from .tensor_functions import (
    add,
    argmax,
    argmin,
    cat,
    chunk,
    clamp,
    clip,
    concat,
    concatenate,
    div,
    einsum,
    flatten,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    std,
    sub,
    sum,
    transpose,
    unsqueeze,
    var,
    where,
)

__version__ = "0.1.0"

# Subpackages and functions loaded on first use (PEP 562), so `import convscope` stays fast:
# name -> (module, attribute or None for the module itself)
_LAZY = {
    "nn": ("convscope.nn", None),
    "optim": ("convscope.optim", None),
    "io": ("convscope.io", None),
    "data": ("convscope.data", None),
    "explain": ("convscope.explain", None),
    "viz": ("convscope.viz", None),
    "apps": ("convscope.apps", None),
    "models": ("convscope.models", None),
    "load": ("convscope.io", "load"),
    "save": ("convscope.io", "save"),
    "load_torch": ("convscope.io", "load_torch"),
    "summary": ("convscope.explain.summary", "summary"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'convscope' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Tensor",
    "add",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "autotune_cache",
    "bool",
    "cat",
    "chunk",
    "clamp",
    "clear_autotune_cache",
    "clip",
    "concat",
    "concatenate",
    "conv_algorithm",
    "div",
    "double",
    "einsum",
    "empty",
    "enable_grad",
    "flatten",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "geometry",
    "get_autotune",
    "get_conv_algorithm",
    "get_default_dtype",
    "get_num_threads",
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
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "models",
    "mul",
    "nn",
    "no_grad",
    "num_threads",
    "ones",
    "optim",
    "permute",
    "rand",
    "randint",
    "randn",
    "record_conv_algorithms",
    "reshape",
    "save",
    "set_autotune",
    "set_conv_algorithm",
    "set_default_dtype",
    "set_grad_enabled",
    "set_num_threads",
    "set_workspace_budget",
    "short",
    "split",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "summary",
    "tensor",
    "transpose",
    "uint8",
    "unsqueeze",
    "var",
    "where",
    "workspace_budget",
    "zeros",
]
