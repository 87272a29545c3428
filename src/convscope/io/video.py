"""Video files in and out with PyAV, the optional extra ``video``.

Install it with ``pip install "convscope[video]"``; without it every function raises
:class:`MissingDependencyError` (a ``RuntimeError``) whose message says so.  Unreadable files
raise ``FileNotFoundError`` or ``ValueError`` naming the file.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> frames = np.zeros((4, 16, 24, 3), dtype=np.uint8)
>>> frames[:, 4:12, 8:16] = (200, 60, 20)
>>> with tempfile.TemporaryDirectory() as tmp:
...     write_video(Path(tmp) / "box.mp4", frames, fps=8)
...     back, fps = read_video(Path(tmp) / "box.mp4", max_frames=10)
>>> back.shape, back.dtype, fps
((4, 16, 24, 3), dtype('uint8'), 8.0)
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np

INSTALL_HINT = 'pip install "convscope[video]"'
#: most frames decoded by one call, and default largest frame side after downscaling
MAX_FRAMES = 256
MAX_SIDE = 256


class MissingDependencyError(RuntimeError):
    """An optional dependency is not installed; the message says how to install it."""


def require_av() -> ModuleType:
    """The ``av`` module, or :class:`MissingDependencyError` with the install command."""
    try:
        import av
    except ImportError:
        raise MissingDependencyError(
            f"video files need PyAV, which is not installed: {INSTALL_HINT}"
        ) from None
    return av


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).strip().splitlines()[-1]


def read_video(
    path: str | os.PathLike, max_frames: int = 16, *, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, float]:
    """The first ``max_frames`` frames of ``path`` as ``(D, H, W, 3)`` uint8 RGB, and the
    frame rate.  Frames whose larger side exceeds ``max_side`` are scaled down (aspect kept)."""
    av = require_av()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if not 1 <= max_frames <= MAX_FRAMES:
        raise ValueError(f"max_frames must be 1-{MAX_FRAMES}, got {max_frames}")
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                scale = min(1.0, max_side / max(frame.width, frame.height))
                size = {
                    "width": max(1, round(frame.width * scale)),
                    "height": max(1, round(frame.height * scale)),
                }
                frames.append(frame.to_ndarray(format="rgb24", **size))
                if len(frames) == max_frames:
                    break
            rate = stream.average_rate or stream.guessed_rate or 25
    except av.error.FFmpegError as error:
        raise ValueError(f"cannot read {path} as video: {_reason(error)}") from None
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    return np.stack(frames), float(rate)


def _encoder(av: ModuleType) -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write ``(D, H, W, 3)`` RGB or ``(D, H, W)`` grey uint8 frames as an MP4 (H.264, or
    MPEG-4 Part 2 where libx264 is missing).  Odd sizes are padded by one edge row/column,
    which the 4:2:0 encoders require.  The format is MP4 whatever the file name says."""
    av = require_av()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or 0 in frames.shape:
        raise ValueError(f"expected (D, H, W[, 3]) uint8 frames, got {frames.dtype} {frames.shape}")
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.shape[-1] != 3:
        raise ValueError(f"expected 3 colour channels, got {frames.shape[-1]}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    _, height, width, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(_encoder(av), rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": "18"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
