"""A ``Conv3d`` over a clip in chunks along time, so memory does not grow with the clip's length.

A chunk of output frames ``[j0, j1)`` reads the padded input frames
``[j0 * stride, (j1 - 1) * stride + extent)`` (its temporal halo); padding in time is taken from
the clip's true first and last frames with the layer's ``padding_mode``
(:func:`convscope.ops.pad.source_index`), so every chunk computes the whole convolution's
frames (up to the last bit: a shorter chunk is a GEMM of another shape).  :func:`plan` checks
the layer against the clip's shape (PyTorch's errors, nothing computed), :meth:`Plan.fit`
sizes the chunks to the workspace budget, and :func:`convolve` takes the input frames one at
a time and yields the output chunk by chunk, keeping only the frames a later chunk reads.

>>> import numpy as np
>>> import convscope as cs
>>> from convscope import nn
>>> _ = cs.manual_seed(0)
>>> layer = nn.Conv3d(3, 2, 3, padding=1, padding_mode="reflect")
>>> clip = np.random.default_rng(0).random((1, 3, 9, 6, 8), dtype=np.float32)
>>> steps = plan(layer, clip.shape)
>>> steps.chunk = 4
>>> steps.chunks(), steps.out_shape
([(0, 4), (4, 8), (8, 9)], (1, 2, 9, 6, 8))
>>> parts = [out for _, out in convolve(steps, iter(clip[0].transpose(1, 0, 2, 3)))]
>>> whole = layer(cs.from_numpy(clip)).detach().numpy()[0]
>>> np.allclose(np.concatenate(parts, axis=1), whole, rtol=1e-5, atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .. import geometry, nn
from ..autograd import no_grad
from ..nn import functional as F
from ..nn.functional import conv as _conv
from ..ops import pad as _pad
from ..ops.workspace import get_workspace_budget
from ..tensor import Tensor

#: share of the workspace budget one chunk's frames (input window and output) may take; the
#: convolution's own scratch buffers are bounded by the budget itself
CHUNK_SHARE = 4


class BudgetError(ValueError):
    """Even one output frame would not fit the workspace budget."""


@dataclass
class Plan:
    """How a ``Conv3d`` runs over a clip ``(1, C, D, H, W)`` chunk by chunk along time."""

    layer: nn.Conv3d
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  #: (before, after) per axis D, H, W
    mode: str  #: the ``ops.pad`` mode of the layer's ``padding_mode``
    sources: np.ndarray  #: padded frame -> input frame it copies (-1: a zero frame)
    chunk: int = 1  #: output frames per chunk

    @property
    def stride(self) -> int:
        return self.layer.stride[0]

    @property
    def extent(self) -> int:
        """Input frames one output frame reads."""
        return self.layer.dilation[0] * (self.layer.kernel_size[0] - 1) + 1

    def chunks(self) -> list[tuple[int, int]]:
        """Output frame ranges ``[j0, j1)``, in order."""
        depth = self.out_shape[2]
        return [(j0, min(j0 + self.chunk, depth)) for j0 in range(0, depth, self.chunk)]

    def reads(self, j0: int, j1: int) -> np.ndarray:
        """The input frame each padded frame of outputs ``[j0, j1)`` copies (-1: zeros)."""
        return self.sources[j0 * self.stride : (j1 - 1) * self.stride + self.extent]

    def chunk_bytes(self, frames: int) -> int:
        """Estimated bytes a chunk of ``frames`` output frames holds: the input frames kept,
        the chunk's input (and its spatially padded copy), the output and its scaling."""
        _, channels, _, height, width = self.in_shape
        window = (frames - 1) * self.stride + self.extent
        kept = window + (0 if self.mode == "constant" else sum(self.pads[0]))
        (_, _), (top, bottom), (left, right) = self.pads
        padded = 0 if self.mode == "constant" else (height + top + bottom) * (width + left + right)
        out = self.out_shape[3] * self.out_shape[4]
        values = channels * ((kept + window) * height * width + window * padded)
        return 4 * (values + frames * out * (self.out_shape[1] + 3))

    def fit(self, budget: int | None = None) -> Plan:
        """Make chunks as long as fit a ``1 / CHUNK_SHARE`` share of ``budget`` (default the
        workspace budget), at least one output frame; :class:`BudgetError` when one output
        frame alone needs more than the whole budget."""
        limit = get_workspace_budget() if budget is None else int(budget)
        one = self.chunk_bytes(1)
        if one > limit:
            _, channels, _, height, width = self.in_shape
            raise BudgetError(
                f"one output frame needs about {_mib(one)} (input frames {channels}x{height}x"
                f"{width}, output {'x'.join(map(str, self.out_shape[1:2] + self.out_shape[3:]))}"
                f"), more than the {_mib(limit)} available"
            )
        share, frames = max(limit // CHUNK_SHARE, one), 1
        while frames < self.out_shape[2] and self.chunk_bytes(frames + 1) <= share:
            frames += 1
        self.chunk = frames
        return self

    def early(self) -> list[int]:
        """Frames a chunk reads before a front-to-back decoder reaches them (circular padding
        at the start reads the last frames; wide reflections read frames ahead): read them
        first and give them to :func:`convolve`."""
        depth, before = self.in_shape[2], self.pads[0][0]
        ahead: set[int] = set()
        for j0, j1 in self.chunks():
            last = min(max((j1 - 1) * self.stride + self.extent - 1 - before, 0), depth - 1)
            reads = self.reads(j0, j1)
            ahead.update(int(i) for i in reads[reads > last])
        return sorted(ahead)


def plan(layer: nn.Conv3d, in_shape: tuple[int, ...]) -> Plan:
    """Check ``layer`` against an input of ``in_shape`` ``(1, C, D, H, W)`` as its forward
    would (PyTorch's ``RuntimeError``, nothing computed) and plan one output frame per chunk
    (:meth:`Plan.fit` sizes the chunks to a budget)."""
    in_shape = tuple(int(v) for v in in_shape)
    spatial = in_shape[2:]
    mode = _pad.LAYER_MODES[layer.padding_mode]
    if mode == "constant":
        pads = tuple(_checked(layer, in_shape, layer.padding)["padding"])
    else:  # as the layer does: pad, then an unpadded convolution
        pads = geometry.resolve_padding(
            geometry.normalize_padding(layer.padding, 3, "conv3d"),
            spatial,
            layer.kernel_size,
            layer.stride,
            layer.dilation,
        )
        _pad.check_pad(in_shape, pads, mode)
        padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads, strict=True)]
        _checked(layer, (*in_shape[:2], *padded), 0)
    out_spatial = geometry.conv_output_size(
        spatial, layer.kernel_size, layer.stride, pads, layer.dilation
    )
    out_shape = (in_shape[0], layer.out_channels, *out_spatial)
    sources = _pad.source_index(in_shape[2], *pads[0], mode)
    return Plan(layer, in_shape, out_shape, tuple(pads), mode, sources)


def _checked(layer: nn.Conv3d, shape: tuple[int, ...], padding: object) -> dict:
    """The layer's own checks on an input of ``shape`` (a zero-memory probe): its resolved
    stride, padding and dilation."""
    probe = np.broadcast_to(np.zeros((), np.float32), shape)
    weight = layer.weight.detach().numpy()
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    options = (layer.stride, padding, layer.dilation, layer.groups, None)
    return _conv._resolve("conv3d", 3, probe, weight, bias, *options)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f} MiB"


def convolve(
    steps: Plan, frames: Iterable[np.ndarray], early: Mapping[int, np.ndarray] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(j0, out)`` for each chunk in order: ``out`` is the layer's output frames
    ``[j0, j0 + len)`` as ``(C_out, len, H', W')``.  ``frames`` gives the input frames
    ``(C, H, W)`` in order; ``early`` holds the frames of :meth:`Plan.early` by index."""
    layer, chunks = steps.layer, steps.chunks()
    last_use: dict[int, int] = {}
    for index, (j0, j1) in enumerate(chunks):
        for i in steps.reads(j0, j1):
            last_use[int(i)] = index
    cache = {int(i): frame for i, frame in (early or {}).items()}
    source, decoded = iter(frames), 0
    _, channels, depth, height, width = steps.in_shape
    (_, _), *spatial = steps.pads
    for index, (j0, j1) in enumerate(chunks):
        reads = [int(i) for i in steps.reads(j0, j1)]
        reach = max((i for i in reads if i >= 0 and i not in cache), default=-1)
        while decoded <= reach:
            frame = next(source, None)
            if frame is None:
                raise ValueError(f"the clip ended after {decoded} of its {depth} frames")
            if last_use.get(decoded, -1) >= index:
                cache[decoded] = frame
            decoded += 1
        x = np.zeros((1, channels, len(reads), height, width), np.float32)
        for t, i in enumerate(reads):
            if i >= 0:
                x[0, :, t] = cache[i]
        for i in [i for i in cache if last_use.get(i, -1) <= index]:
            del cache[i]
        with no_grad():
            if steps.mode == "constant":
                padding = ((0, 0), *spatial)
            else:
                x = _pad.pad(x, [(0, 0), *spatial], steps.mode)
                padding = 0
            out = F.conv3d(
                Tensor(x),
                layer.weight,
                layer.bias,
                layer.stride,
                padding,
                layer.dilation,
                layer.groups,
            )
        del x
        yield j0, out.numpy()[0]
