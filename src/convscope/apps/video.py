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

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..io.video import MAX_SIDE, read_video, write_video
from .audio import feature_maps, map_positions

__all__ = [
    "FRAMES",
    "SAMPLE",
    "channel_frames",
    "comparison_figure",
    "load_clip",
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


def channel_frames(channel: np.ndarray) -> np.ndarray:
    """One output channel ``(D, H, W)`` as uint8 grey frames, scaled by the channel's range over
    the whole clip (one scale for all frames, so brightness changes over time stay visible)."""
    low, high = float(channel.min()), float(channel.max())
    scaled = (channel - low) / (high - low) if high > low else np.zeros_like(channel)
    return np.rint(scaled * 255).astype(np.uint8)


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
    from matplotlib.figure import Figure

    (d_scale, d_offset), (h_scale, h_offset), (w_scale, w_offset) = map_positions(
        [layer], clip.shape[2:]
    )[0]
    depth = out.shape[2]
    out_frame = min(max(round((frame - d_offset) / d_scale), 0), depth - 1)
    centre = d_scale * out_frame + d_offset
    shown = min(out.shape[1], MAX_SHOWN_CHANNELS)
    panels = 1 + shown
    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    figure = Figure(figsize=(4.2 * cols, 3.4 * rows + 0.6), dpi=100, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    axes[0].imshow(clip[0, :, frame].transpose(1, 2, 0).clip(0, 1))
    axes[0].set_title(f"input frame {frame} (t = {frame / fps:.2f} s)")
    # place output pixels where their receptive fields are centred on the input's grid
    height, width = out.shape[3:]
    extent = [
        w_offset - w_scale / 2,
        w_scale * (width - 1) + w_offset + w_scale / 2,
        h_scale * (height - 1) + h_offset + h_scale / 2,
        h_offset - h_scale / 2,
    ]
    for channel in range(shown):
        ax = axes[channel + 1]
        image = ax.imshow(out[0, channel, out_frame], cmap="gray", extent=extent)
        ax.set_title(f"output channel {channel}, frame {out_frame}")
        figure.colorbar(image, ax=ax, shrink=0.85)
    for ax in axes:
        ax.set_xlabel("x (input pixels)")
        ax.set_ylabel("y (input pixels)")
    for ax in axes[panels:]:
        ax.set_visible(False)
    more = f"; first {shown} of {out.shape[1]} channels" if out.shape[1] > shown else ""
    figure.suptitle(
        f"{layer}: input {tuple(clip.shape)} -> output {tuple(out.shape)}\n"
        f"output frame {out_frame} is centred on input frame {centre:g}{more}"
    )
    return figure
