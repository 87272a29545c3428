"""Pooling layers: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``, ``AdaptiveAvgPool1d/2d/3d``.

One base class per kind, parametrised by the number of spatial dimensions; the arithmetic is
the N-d kernels of :mod:`convscope.ops.pool`.  Arguments are kept as given, so reprs are
PyTorch's.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> pool = nn.MaxPool2d(2)
>>> pool
MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
>>> pool(cs.rand(1, 3, 32, 32)).shape
(1, 3, 16, 16)
"""

from __future__ import annotations

from typing import Any

from . import functional as F
from .module import Module


class _MaxPoolNd(Module):
    _dims = 0

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    independent_samples = True

    def forward(self, input: Any) -> Any:
        return getattr(F, f"max_pool{self._dims}d")(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """Max pooling over ``(N, C, L)``; ``return_indices=True`` also returns the argmax positions.

    >>> import convscope as cs
    >>> MaxPool1d(3, stride=2, padding=1)(cs.rand(2, 4, 9)).shape
    (2, 4, 5)
    """

    _dims = 1


class MaxPool2d(_MaxPoolNd):
    """Max pooling over ``(N, C, H, W)``.

    >>> MaxPool2d((3, 2), stride=1, ceil_mode=True)
    MaxPool2d(kernel_size=(3, 2), stride=1, padding=0, dilation=1, ceil_mode=True)
    """

    _dims = 2


class MaxPool3d(_MaxPoolNd):
    """Max pooling over ``(N, C, D, H, W)``.

    >>> MaxPool3d(3, stride=2, padding=1)
    MaxPool3d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
    """

    _dims = 3


class _AvgPoolNd(Module):
    _dims = 0

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    independent_samples = True

    def forward(self, input: Any) -> Any:
        window = (self.kernel_size, self.stride, self.padding, self.ceil_mode)
        if self._dims == 1:
            return F.avg_pool1d(input, *window, self.count_include_pad)
        pool = getattr(F, f"avg_pool{self._dims}d")
        return pool(input, *window, self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _single(value: Any) -> tuple:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


class AvgPool1d(_AvgPoolNd):
    """Average pooling over ``(N, C, L)`` (no ``divisor_override``, arguments kept as tuples,
    as in PyTorch).

    >>> AvgPool1d(3)
    AvgPool1d(kernel_size=(3,), stride=(3,), padding=(0,))
    """

    _dims = 1

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.kernel_size, self.stride = _single(self.kernel_size), _single(self.stride)
        self.padding = _single(padding)


class AvgPool2d(_AvgPoolNd):
    """Average pooling over ``(N, C, H, W)``.

    >>> import convscope as cs
    >>> AvgPool2d(2, divisor_override=1)(cs.ones(1, 1, 2, 2)).tolist()
    [[[[4.0]]]]
    """

    _dims = 2


class AvgPool3d(_AvgPoolNd):
    """Average pooling over ``(N, C, D, H, W)``.

    >>> import convscope as cs
    >>> AvgPool3d(2, padding=1, count_include_pad=False)(cs.ones(1, 1, 2, 2, 2)).shape
    (1, 1, 2, 2, 2)
    """

    _dims = 3


class _AdaptiveAvgPoolNd(Module):
    _dims = 0

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    independent_samples = True

    def forward(self, input: Any) -> Any:
        return getattr(F, f"adaptive_avg_pool{self._dims}d")(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, L)`` to ``output_size`` cells, whatever ``L``.

    >>> import convscope as cs
    >>> AdaptiveAvgPool1d(4)(cs.rand(2, 3, 10)).shape
    (2, 3, 4)
    """

    _dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, H, W)`` to ``output_size``; ``None`` keeps a size.

    >>> AdaptiveAvgPool2d((None, 7))
    AdaptiveAvgPool2d(output_size=(None, 7))
    """

    _dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling of ``(N, C, D, H, W)`` to ``output_size``.

    >>> from convscope import rand
    >>> global_average = AdaptiveAvgPool3d(1)
    >>> global_average(rand(2, 3, 4, 5, 6)).shape
    (2, 3, 1, 1, 1)
    """

    _dims = 3


class _AdaptiveMaxPoolNd(Module):
    _dims = 0

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    independent_samples = True

    def forward(self, input: Any) -> Any:
        function = getattr(F, f"adaptive_max_pool{self._dims}d")
        return function(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, L)`` to ``output_size`` cells.

    >>> AdaptiveMaxPool1d(4)
    AdaptiveMaxPool1d(output_size=4)
    """

    _dims = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, H, W)`` to ``output_size``; ``None`` keeps a size.

    >>> import convscope as cs
    >>> AdaptiveMaxPool2d((None, 2))(cs.rand(1, 3, 5, 7)).shape
    (1, 3, 5, 2)
    """

    _dims = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling of ``(N, C, D, H, W)`` to ``output_size``.

    >>> AdaptiveMaxPool3d(1)
    AdaptiveMaxPool3d(output_size=1)
    """

    _dims = 3
