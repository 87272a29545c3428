"""Convolution layers: one ``_ConvNd`` base for every dimension, plain and transposed.

Subclasses only fix the number of spatial dimensions and whether the layer is transposed.

>>> import convscope as cs
>>> import convscope.nn as nn
>>> conv = nn.Conv2d(3, 16, 3, padding=1)
>>> conv
Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
>>> conv(cs.rand(4, 3, 32, 32)).shape
(4, 16, 32, 32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtypes, geometry
from ..ops.pad import LAYER_MODES
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

PADDING_MODES = tuple(LAYER_MODES)
_FUNCTIONS = {
    (1, False): F.conv1d,
    (2, False): F.conv2d,
    (3, False): F.conv3d,
    (1, True): F.conv_transpose1d,
    (2, True): F.conv_transpose2d,
    (3, True): F.conv_transpose3d,
}


def _tuple(value: Any, n: int) -> tuple:
    """PyTorch's ``_ntuple``: sequences become tuples as they are, scalars are repeated."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return (value,) * n


class _ConvNd(Module):
    """Shared machinery of Conv1d/2d/3d and ConvTranspose1d/2d/3d."""

    _dims: int = 0
    _transposed: bool = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: Any = None,
        output_padding: Any = 0,
    ) -> None:
        super().__init__()
        n, name = self._dims, type(self).__name__
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            allowed = ("valid", "same", "causal") if n == 1 else ("valid", "same")
            if self._transposed or padding not in allowed:
                raise ValueError(
                    f"Invalid padding string {padding!r} for {name}, should be one of "
                    f"{set(allowed) if not self._transposed else 'an int or a tuple'}"
                )
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {set(PADDING_MODES)}, but got "
                f"padding_mode='{padding_mode}'"
            )
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, n)
        self.stride = _tuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.dilation = _tuple(dilation, n)
        self.transposed = self._transposed
        self.output_padding = _tuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        dtype = _dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)
        if self._transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        if any(s < 0 for s in shape):
            raise RuntimeError(
                f"Trying to create tensor with negative dimension {min(shape)}: {list(shape)}"
            )
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias uniform on ``±1/sqrt(fan_in)``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.padding):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)

    def _conv(self) -> Any:
        return _FUNCTIONS[(self._dims, self._transposed)]


class _ConvForward(_ConvNd):
    independent_samples = True

    def forward(self, input: Any) -> Tensor:
        return self._convolve(input, self.bias)

    def _convolve(self, input: Any, bias: Any) -> Tensor:
        """The layer's convolution with ``bias`` in place of its own (``None``: no bias), the
        fused inference path's entry (see ``nn.fusion``)."""
        conv = self._conv()
        if self.padding_mode == "zeros":
            return conv(
                input, self.weight, bias, self.stride, self.padding, self.dilation, self.groups
            )
        spatial = np.shape(input)[-self._dims :]
        pads = geometry.resolve_padding(
            geometry.normalize_padding(self.padding, self._dims, conv.__name__),
            spatial,
            geometry.ntuple(self.kernel_size, self._dims, "kernel_size", conv.__name__),
            geometry.ntuple(self.stride, self._dims, "stride", conv.__name__),
            geometry.ntuple(self.dilation, self._dims, "dilation", conv.__name__),
        )
        torch_order = [v for lo_hi in reversed(pads) for v in lo_hi]
        padded = F.pad(input, torch_order, mode=self.padding_mode)
        return conv(padded, self.weight, bias, self.stride, 0, self.dilation, self.groups)


class _ConvTransposeForward(_ConvNd):
    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype,
            output_padding,
        )

    def _output_padding(self, input: Any, output_size: Sequence[int] | None) -> Any:
        if output_size is None:
            return self.output_padding
        n, ndim = self._dims, np.ndim(input)
        leading = 2 if ndim == n + 2 else 1
        wanted = list(output_size)
        if len(wanted) == leading + n:
            wanted = wanted[leading:]
        if len(wanted) != n:
            raise ValueError(
                f"ConvTranspose{n}D: for {ndim}D input, output_size must have {n} or "
                f"{leading + n} elements (got {len(output_size)})"
            )
        return geometry.transpose_output_padding(
            np.shape(input)[-n:],
            wanted,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
        )

    independent_samples = True

    def forward(self, input: Any, output_size: Sequence[int] | None = None) -> Tensor:
        return self._convolve(input, self.bias, output_size)

    def _convolve(self, input: Any, bias: Any, output_size: Sequence[int] | None = None) -> Tensor:
        """The layer's transposed convolution with ``bias`` in place of its own."""
        return self._conv()(
            input,
            self.weight,
            bias,
            self.stride,
            self.padding,
            self._output_padding(input, output_size),
            self.groups,
            self.dilation,
        )


class Conv1d(_ConvForward):
    """1-D convolution over ``(N, C, L)``; ``padding`` also accepts ``'causal'``.

    >>> import convscope as cs
    >>> Conv1d(2, 3, 5)(cs.rand(4, 2, 6)).shape
    (4, 3, 2)
    """

    _dims = 1


class Conv2d(_ConvForward):
    """2-D convolution over ``(N, C, H, W)``.

    >>> import convscope as cs
    >>> Conv2d(3, 6, 3)(cs.rand(2, 3, 32, 32)).shape
    (2, 6, 30, 30)
    """

    _dims = 2


class Conv3d(_ConvForward):
    """3-D convolution over ``(N, C, D, H, W)``.

    >>> import convscope as cs
    >>> Conv3d(1, 4, 3, padding=1)(cs.rand(1, 1, 4, 5, 6)).shape
    (1, 4, 4, 5, 6)
    """

    _dims = 3


class ConvTranspose1d(_ConvTransposeForward):
    """1-D transposed convolution (the input-gradient of ``Conv1d``).

    >>> import convscope as cs
    >>> ConvTranspose1d(4, 2, 3, stride=2)(cs.rand(1, 4, 5), output_size=[12]).shape
    (1, 2, 12)
    """

    _dims = 1


class ConvTranspose2d(_ConvTransposeForward):
    """2-D transposed convolution; ``ConvTranspose2d(16, 8, 2, stride=2)`` doubles H and W.

    >>> import convscope as cs
    >>> ConvTranspose2d(16, 8, 2, stride=2)(cs.rand(1, 16, 8, 8)).shape
    (1, 8, 16, 16)
    """

    _dims = 2


class ConvTranspose3d(_ConvTransposeForward):
    """3-D transposed convolution.

    >>> import convscope as cs
    >>> up = ConvTranspose3d(2, 2, 3, stride=2, padding=1, output_padding=1)
    >>> up(cs.rand(1, 2, 2, 3, 4)).shape
    (1, 2, 4, 6, 8)
    """

    _dims = 3
