"""Which input cell each kernel tap reads, for every output position — asked of the engine.

The learning tools (``explain``, ``animate``) never re-derive the sliding-window formula.
They run the convolution primitive itself on an *index image* (each cell holds its own
flat index + 1) with one one-hot kernel per tap, in exact integer arithmetic, so what they
draw is what the engine computes.

>>> m = tap_map((5,), kernel_size=3, stride=2, padding=1)
>>> m.out_shape
(3,)
>>> m.grid[1].tolist(), m.sources[0].tolist(), m.padded[0].tolist()
([2, 3, 4], [-1, 0, 1], [True, False, False])
>>> tap_map((4,), kernel_size=3, padding=2, padding_mode="reflect").sources[0].tolist()
[2, 1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import geometry
from ..ops import conv as conv_ops
from ..ops import pad as pad_ops

_PAD_MODES = pad_ops.LAYER_MODES


@dataclass(frozen=True)
class TapMap:
    """Tap-by-tap view of a convolution over one input channel's spatial grid.

    Arrays have shape ``(*out_shape, *kernel_size)``:

    - ``grid``: flat index of the read cell in the *working grid* — the padded input for a
      convolution, the zero-inserted and padded input for a transposed one
      (shape ``grid_shape``), i.e. the picture in the classic animations;
    - ``sources``: flat index of the input cell whose value the tap reads (for a padding
      cell in reflect/replicate/circular mode, the cell it copies), or -1 for a zero;
    - ``padded``: True where the tap reads a padding cell (or an inserted zero).

    ``pads`` holds the (before, after) padding of the working grid per dimension and
    ``input_dilation`` its zero insertion (the stride of a transposed convolution, else 1).
    For a transposed convolution the grid is read with the flipped kernel at stride 1; all
    three arrays are indexed by the original kernel tap all the same.
    """

    input_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    grid_shape: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    input_dilation: tuple[int, ...]
    grid: np.ndarray
    sources: np.ndarray
    padded: np.ndarray

    def window(
        self, out_index: Sequence[int]
    ) -> list[tuple[tuple[int, ...], tuple[int, ...] | None]]:
        """``(kernel tap, input coordinates or None)`` for every tap of one output position."""
        taps = self.sources[tuple(out_index)]
        result = []
        for tap in np.ndindex(taps.shape):
            source = int(taps[tap])
            coords = (
                None
                if source < 0
                else tuple(int(v) for v in np.unravel_index(source, self.input_shape))
            )
            result.append((tap, coords))
        return result


def _probe(index_image: np.ndarray, kernel_size: tuple[int, ...], **conv_args: Any) -> np.ndarray:
    """Run the primitive with one one-hot kernel per tap; result (*out, *kernel)."""
    taps = int(np.prod(kernel_size))
    kernels = np.eye(taps, dtype=np.int64).reshape(taps, 1, *kernel_size)
    out = conv_ops.conv_general(index_image[None, None], kernels, **conv_args)[0]
    return np.moveaxis(
        out.reshape(kernel_size + out.shape[1:]),
        range(len(kernel_size)),
        range(-len(kernel_size), 0),
    )


def tap_map(
    input_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    *,
    padding_mode: str = "zeros",
    transposed: bool = False,
    output_padding: Any = 0,
) -> TapMap:
    """The :class:`TapMap` of a convolution (or transposed one) over ``input_shape``.

    Arguments are the layer's, for the spatial dimensions only; the same validation and
    padding resolution ('same', 'valid', 'causal', per-side) as the layers apply.
    """
    shape = tuple(int(s) for s in input_shape)
    n = len(shape)
    kernel = geometry.ntuple(kernel_size, n, "kernel_size")
    stride_t = geometry.ntuple(stride, n, "stride")
    dilation_t = geometry.ntuple(dilation, n, "dilation")
    geometry.check_kernel(kernel)
    geometry.check_stride_dilation(stride_t, dilation_t)
    index_image = np.arange(1, int(np.prod(shape)) + 1, dtype=np.int64).reshape(shape)
    ones = (1,) * n
    if transposed:
        pads = geometry.transpose_pads(padding, n)
        out_pad = geometry.ntuple(output_padding, n, "output_padding")
        geometry.check_output_padding(out_pad, stride_t, dilation_t)
        grid_pads, input_dilation = geometry.transpose_as_conv(
            kernel, stride_t, pads, out_pad, dilation_t
        )
    else:
        if padding_mode not in _PAD_MODES:
            raise ValueError(
                f"padding_mode must be one of {tuple(_PAD_MODES)}, "
                f"but got padding_mode='{padding_mode}'"
            )
        grid_pads = geometry.resolve_padding(
            geometry.normalize_padding(padding, n), shape, kernel, stride_t, dilation_t
        )
        input_dilation = ones
    dilated = tuple((s - 1) * d + 1 for s, d in zip(shape, input_dilation, strict=True))
    grid_shape = tuple(s + a + b for s, (a, b) in zip(dilated, grid_pads, strict=True))
    if any(g < 1 for g in grid_shape):
        raise RuntimeError(f"the padded input {grid_shape} is empty")
    grid_image = np.arange(1, int(np.prod(grid_shape)) + 1, dtype=np.int64).reshape(grid_shape)
    window_args = {
        "stride": ones if transposed else stride_t,
        "padding": ((0, 0),) * n,
        "dilation": dilation_t,
    }
    grid = _probe(grid_image, kernel, **window_args) - 1
    if transposed:
        one_hot = np.eye(int(np.prod(kernel)), dtype=np.int64).reshape(-1, 1, *kernel)
        reads = conv_ops.conv_general(  # the input cell each (output, original tap) meets
            index_image[None, None],
            np.flip(one_hot, axis=tuple(range(2, 2 + n))),
            stride=ones,
            padding=grid_pads,
            dilation=dilation_t,
            input_dilation=input_dilation,
        )[0]
        sources = np.moveaxis(reads.reshape(kernel + reads.shape[1:]), range(n), range(-n, 0)) - 1
        grid = np.flip(grid, axis=tuple(range(-n, 0)))  # index grid by the original tap
        padded = sources < 0
    else:
        padded_sources = pad_ops.pad(index_image, grid_pads, _PAD_MODES[padding_mode]) - 1
        zero_sources = pad_ops.pad(index_image, grid_pads, "constant") - 1
        sources = padded_sources.reshape(-1)[grid]
        padded = zero_sources.reshape(-1)[grid] < 0
    out_shape = grid.shape[:n]
    return TapMap(
        shape,
        out_shape,
        grid_shape,
        tuple(grid_pads),
        tuple(input_dilation),
        np.ascontiguousarray(grid),
        np.ascontiguousarray(sources),
        np.ascontiguousarray(padded),
    )
