"""``Linear`` (a fully connected layer) and ``Identity``.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> fc = nn.Linear(3, 4)
>>> fc
Linear(in_features=3, out_features=4, bias=True)
>>> fc(cs.rand(2, 3)).shape
(2, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtypes
from ..tensor import Tensor
from . import functional as F
from .conv import _ConvNd
from .module import Module
from .parameter import Parameter


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored, as in PyTorch).

    >>> import convscope as cs
    >>> x = cs.ones(2)
    >>> Identity(54, unused="argument")(x) is x
    True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    independent_samples = True

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dimension; weight ``(out_features, in_features)``.

    PyTorch's initialisation: weight ``kaiming_uniform_(a=sqrt(5))`` (uniform on
    ``±1/sqrt(in_features)``), bias uniform on ``±1/sqrt(in_features)``.

    >>> import convscope as cs
    >>> Linear(5, 2, bias=False, dtype=cs.float64).weight.dtype
    dtype('float64')
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # PyTorch initialises a linear layer exactly like a convolution: weight
    # kaiming_uniform_(a=sqrt(5)), bias uniform on ±1/sqrt(fan_in)
    reset_parameters = _ConvNd.reset_parameters

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
