"""Activation layers: ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``GELU``, ``Softmax``.

Each calls its function of :mod:`convscope.nn.functional`; the reprs are PyTorch's.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> nn.LeakyReLU(0.2)(cs.tensor([-1.0, 1.0])).tolist()
[-0.2000000..., 1.0]
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class ReLU(Module):
    """``max(x, 0)``; ``inplace=True`` writes into the input (see ``functional.relu``).

    >>> ReLU(inplace=True)
    ReLU(inplace=True)
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    >>> LeakyReLU()
    LeakyReLU(negative_slope=0.01)
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """The logistic function ``1 / (1 + exp(-x))``.

    >>> import convscope as cs
    >>> Sigmoid()(cs.zeros(2)).tolist()
    [0.5, 0.5]
    """

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """The hyperbolic tangent.

    >>> Tanh()
    Tanh()
    """

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.tanh(input)


class GELU(Module):
    """``x * Phi(x)``, exactly (``approximate='none'``) or with PyTorch's tanh formula.

    >>> GELU(approximate="tanh")
    GELU(approximate='tanh')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Normalise ``exp(x)`` along ``dim`` (``None``: PyTorch's implicit choice, with a warning).

    >>> import convscope as cs
    >>> Softmax(dim=-1)(cs.zeros(1, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    @property
    def independent_samples(self) -> bool:  # type: ignore[override]
        """Each sample alone when normalising along a named dimension after the batch's."""
        return self.dim is not None and self.dim >= 1

    def forward(self, input: Any) -> Tensor:
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _InplaceActivation(Module):
    """An activation with only an ``inplace`` option; ``_function`` names its functional form."""

    _function = ""
    _show_inplace = True  # torch's repr shows inplace=True for some of these only

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return getattr(F, self._function)(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace and self._show_inplace else ""


class ReLU6(_InplaceActivation):
    """``min(max(x, 0), 6)`` (MobileNetV2).

    >>> ReLU6(inplace=True)
    ReLU6(inplace=True)
    """

    _function = "relu6"


class Hardsigmoid(_InplaceActivation):
    """``relu6(x + 3) / 6`` (MobileNetV3's squeeze-excitation gate).

    >>> Hardsigmoid()
    Hardsigmoid()
    """

    _function = "hardsigmoid"
    _show_inplace = False


class Hardswish(_InplaceActivation):
    """``x * relu6(x + 3) / 6`` (MobileNetV3).

    >>> Hardswish(inplace=True)
    Hardswish()
    """

    _function = "hardswish"
    _show_inplace = False


class SiLU(_InplaceActivation):
    """``x * sigmoid(x)`` (EfficientNet).

    >>> SiLU(inplace=True)
    SiLU(inplace=True)
    """

    _function = "silu"


class Mish(_InplaceActivation):
    """``x * tanh(softplus(x))``.

    >>> Mish()
    Mish()
    """

    _function = "mish"
    _show_inplace = False


class Hardtanh(Module):
    """``x`` clamped to ``[min_val, max_val]``.

    >>> Hardtanh(-2.0, 2.0)
    Hardtanh(min_val=-2.0, max_val=2.0)
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError("min_val cannot be greater than max_val")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"min_val={self.min_val}, max_val={self.max_val}{inplace}"


class ELU(Module):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    >>> ELU()
    ELU(alpha=1.0)
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold``.

    >>> Softplus()
    Softplus(beta=1.0, threshold=20.0)
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    """Leaky ReLU with a learned slope (one, or one per channel), initialised to ``init``.

    >>> PReLU(3)
    PReLU(num_parameters=3)
    >>> list(PReLU().state_dict())
    ['weight']
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype: Any = None) -> None:
        import numpy as np

        from .. import _dtypes
        from .parameter import Parameter

        super().__init__()
        self.num_parameters = num_parameters
        dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.full(num_parameters, init, dtype=dtype))

    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
