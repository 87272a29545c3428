"""Conv3d on a video clip (tutorial seed 001): frames as ``(1, 3, D, H, W)`` in [0, 1].

A 3-D kernel spans neighbouring frames as well as neighbouring pixels, so its output reacts
to motion: ``Conv3d(3, 4, 3, 1, 1)`` keeps ``D, H, W`` and gives four channels.  Reading and
writing files needs the optional PyAV (:mod:`convscope.io.video`); the arithmetic does not.

>>> import numpy as np
>>> import convscope as cs
>>> _ = cs.manual_seed(0)
>>> clip = np.random.default_rng(0).random((1, 3, 5, 12, 16), dtype=np.float32)
>>> layer, out = video_conv(clip)
>>> layer, out.shape
(Conv3d(3, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1)), (1, 4, 5, 12, 16))
>>> channel_frames(out[0, 0]).dtype
dtype('uint8')
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import geometry, nn
from ..io.video import MAX_SIDE, VideoWriter, read_video, write_video
from . import video_stream
from .audio import feature_maps, map_positions

__all__ = [
    "FRAMES",
    "SAMPLE",
    "channel_frames",
    "comparison_figure",
    "frame_array",
    "frame_comparison_figure",
    "load_clip",
    "output_frame",
    "read_video",
    "sample_path",
    "video_conv",
    "write_video",
]

SAMPLE = "clip.mp4"  #: bundled clip: 24 frames 128x96 of moving shapes at 12 fps
FRAMES = 16  #: frames read by default, as in the seed
SEED_CONV3D = {"out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1}
MAX_SHOWN_CHANNELS = 8


def sample_path() -> Path:
    """Path of the bundled video clip."""
    from .. import samples

    return samples.path(SAMPLE)


def load_clip(
    path: str | os.PathLike | None = None, frames: int = FRAMES, *, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, float]:
    """Up to ``frames`` frames of ``path`` (default: the bundled clip) as a float32
    ``(1, 3, D, H, W)`` array in [0, 1], and the frame rate."""
    video, fps = read_video(sample_path() if path is None else path, frames, max_side=max_side)
    clip = video.transpose(3, 0, 1, 2)[None].astype(np.float32) / 255
    return np.ascontiguousarray(clip), fps


def video_conv(
    clip: np.ndarray, conv: Mapping[str, Any] | None = None
) -> tuple[nn.Conv3d, np.ndarray]:
    """Apply ``Conv3d(channels, **conv)`` (default the seed's ``Conv3d(3, 4, 3, 1, 1)``) to
    ``clip`` ``(1, C, D, H, W)``; returns the layer and its output."""
    clip = np.asarray(clip, dtype=np.float32)
    layer = nn.Conv3d(clip.shape[1], **dict(SEED_CONV3D if conv is None else conv))
    (out,) = feature_maps([layer], clip)
    return layer, out


def frame_array(frame: np.ndarray) -> np.ndarray:
    """A decoded ``(H, W, 3)`` uint8 frame as float32 ``(3, H, W)`` in [0, 1] (one frame of
    :func:`load_clip`'s array)."""
    return frame.transpose(2, 0, 1).astype(np.float32) / 255


def channel_frames(
    channel: np.ndarray, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """One output channel ``(D, H, W)`` as uint8 grey frames, scaled by the channel's range over
    the whole clip (one scale for all frames, so brightness changes over time stay visible).
    ``value_range`` gives that range when ``channel`` holds only some of the clip's frames."""
    if value_range is None:
        value_range = float(channel.min()), float(channel.max())
    low, high = value_range
    scaled = (channel - low) / (high - low) if high > low else np.zeros_like(channel)
    return np.rint(scaled * 255).astype(np.uint8)


def output_frame(layer: nn.Module, clip_shape: Sequence[int], frame: int) -> tuple[int, float]:
    """The output frame centred closest to input frame ``frame`` of a clip ``(1, C, D, H, W)``,
    and the input position (in frames) it is centred on."""
    (scale, offset), *_ = map_positions([layer], clip_shape[2:])[0]
    depth = geometry.conv_output_shape(
        clip_shape[2:], layer.kernel_size, layer.stride, layer.padding, layer.dilation
    )[0]
    out = min(max(round((frame - offset) / scale), 0), depth - 1)
    return out, scale * out + offset


def comparison_figure(
    clip: np.ndarray,
    out: np.ndarray,
    *,
    layer: nn.Module,
    frame: int = 0,
    fps: float = 12.0,
):
    """Input frame ``frame`` next to every output channel (at most ``MAX_SHOWN_CHANNELS``) at
    the output frame centred closest to it, each with its colour bar."""
    out_frame, _ = output_frame(layer, clip.shape, frame)
    return frame_comparison_figure(
        clip[0, :, frame],
        out[0, :MAX_SHOWN_CHANNELS, out_frame],
        layer=layer,
        clip_shape=clip.shape,
        out_shape=out.shape,
        frame=frame,
        fps=fps,
    )


def frame_comparison_figure(
    picture: np.ndarray,
    maps: np.ndarray,
    *,
    layer: nn.Module,
    clip_shape: Sequence[int],
    out_shape: Sequence[int],
    frame: int = 0,
    fps: float = 12.0,
):
    """:func:`comparison_figure` from the two frames it shows: ``picture``, input frame
    ``frame`` ``(3, H, W)``, and ``maps``, the first output channels ``(C, H', W')`` at the
    output frame :func:`output_frame` gives, of a clip ``clip_shape`` and output ``out_shape``."""
    from matplotlib.figure import Figure

    _, (h_scale, h_offset), (w_scale, w_offset) = map_positions([layer], clip_shape[2:])[0]
    out_frame, centre = output_frame(layer, clip_shape, frame)
    shown = min(out_shape[1], MAX_SHOWN_CHANNELS)
    panels = 1 + shown
    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    figure = Figure(figsize=(4.2 * cols, 3.4 * rows + 0.6), dpi=100, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    axes[0].imshow(picture.transpose(1, 2, 0).clip(0, 1))
    axes[0].set_title(f"input frame {frame} (t = {frame / fps:.2f} s)")
    # place output pixels where their receptive fields are centred on the input's grid
    height, width = out_shape[3:]
    extent = [
        w_offset - w_scale / 2,
        w_scale * (width - 1) + w_offset + w_scale / 2,
        h_scale * (height - 1) + h_offset + h_scale / 2,
        h_offset - h_scale / 2,
    ]
    for channel in range(shown):
        ax = axes[channel + 1]
        image = ax.imshow(maps[channel], cmap="gray", extent=extent)
        ax.set_title(f"output channel {channel}, frame {out_frame}")
        figure.colorbar(image, ax=ax, shrink=0.85)
    for ax in axes:
        ax.set_xlabel("x (input pixels)")
        ax.set_ylabel("y (input pixels)")
    for ax in axes[panels:]:
        ax.set_visible(False)
    more = f"; first {shown} of {out_shape[1]} channels" if out_shape[1] > shown else ""
    figure.suptitle(
        f"{layer}: input {tuple(clip_shape)} -> output {tuple(out_shape)}\n"
        f"output frame {out_frame} is centred on input frame {centre:g}{more}"
    )
    return figure


#: memory an open H.264 encoder holds (PyAV's libx264 with its default threads, measured on 2
#: cores: about 10 MB at 128 x 96, 20 MB at 256 x 192, 53 MB at 512 x 384): fixed + per pixel
ENCODER_BYTES, ENCODER_BYTES_PER_PIXEL = 8 << 20, 240


def encoder_bytes(height: int, width: int) -> int:
    """Estimated memory of one open video encoder for frames of ``height x width``."""
    return ENCODER_BYTES + ENCODER_BYTES_PER_PIXEL * (height + height % 2) * (width + width % 2)


def stream_output(
    frames: Iterable[np.ndarray], steps: video_stream.Plan
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`video_stream.convolve` over decoded ``(H, W, 3)`` uint8 frames, which must be
    iterable more than once (a :class:`~convscope.io.video.VideoReader`): the frames a chunk
    reads ahead of the decoder (:meth:`video_stream.Plan.early`) come from a first pass."""
    wanted = set(steps.early())
    early = {}
    if wanted:
        for index, frame in enumerate(frames):
            if index in wanted:
                early[index] = frame_array(frame)
            if index >= max(wanted):
                break
    return video_stream.convolve(steps, map(frame_array, frames), early)


@dataclass
class Scan:
    """One pass of the convolution over a clip: each output channel's ``(min, max)``, the
    output frame ``shown`` (first channels, ``(C, H', W')``) and, when the clip came in one
    chunk, the whole ``output`` ``(C_out, D', H', W')`` (else ``None``)."""

    ranges: list[tuple[float, float]]
    shown: np.ndarray
    output: np.ndarray | None


def scan_output(frames: Iterable[np.ndarray], steps: video_stream.Plan, shown_frame: int) -> Scan:
    """Run the convolution once, chunk by chunk, keeping only each channel's range, output frame
    ``shown_frame`` of the first ``MAX_SHOWN_CHANNELS`` channels and a single chunk's output."""
    low = np.full(steps.out_shape[1], np.inf, np.float32)
    high = np.full(steps.out_shape[1], -np.inf, np.float32)
    shown = output = None
    for j0, out in stream_output(frames, steps):
        np.minimum(low, out.min(axis=(1, 2, 3)), out=low)
        np.maximum(high, out.max(axis=(1, 2, 3)), out=high)
        if j0 <= shown_frame < j0 + out.shape[1]:
            shown = out[:MAX_SHOWN_CHANNELS, shown_frame - j0].copy()
        if len(steps.chunks()) == 1:
            output = out
    ranges = [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    return Scan(ranges, shown, output)


def write_channel_videos(
    frames: Iterable[np.ndarray],
    steps: video_stream.Plan,
    scan: Scan,
    paths: Sequence[str | os.PathLike],
    fps: float,
    *,
    encoders: int = 1,
) -> int:
    """Write output channel ``c`` to ``paths[c]`` as grey MP4 scaled by ``scan.ranges[c]``
    (:func:`channel_frames`).  From ``scan.output`` one channel at a time; else the
    convolution runs again over ``frames``, writing ``encoders`` channels per pass.  Returns
    the passes made over the clip."""
    channels = range(steps.out_shape[1])
    if scan.output is not None:
        for channel in channels:
            write_video(
                paths[channel], channel_frames(scan.output[channel], scan.ranges[channel]), fps
            )
        return 0
    size = max(1, encoders)
    groups = [channels[i : i + size] for i in range(0, len(channels), size)]
    for group in groups:
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(paths[c], fps)) for c in group]
            for _, out in stream_output(frames, steps):
                for channel, writer in zip(group, writers, strict=True):
                    writer.write(channel_frames(out[channel], scan.ranges[channel]))
    return len(groups)
