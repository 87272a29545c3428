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

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

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


class VideoReader:
    """The first ``max_frames`` frames of a video file, decoded one at a time as ``(H, W, 3)``
    uint8 RGB; each iteration decodes the file again, so a long clip is never held in memory.

    Frames whose larger side exceeds ``max_side`` are scaled down (aspect kept); every frame is
    given the first frame's size.  Opening checks the file (``FileNotFoundError``, or
    ``ValueError`` naming it) and reads the frame rate ``fps``.
    """

    def __init__(
        self, path: str | os.PathLike, max_frames: int = 16, *, max_side: int = MAX_SIDE
    ) -> None:
        self.av = require_av()
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such file: {self.path}")
        if not self.path.is_file():
            raise ValueError(f"{self.path} is not a file")
        if not 1 <= max_frames <= MAX_FRAMES:
            raise ValueError(f"max_frames must be 1-{MAX_FRAMES}, got {max_frames}")
        if max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        self.max_frames, self.max_side = max_frames, max_side
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 25
        self.fps = float(rate)

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        try:
            with self.av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{self.path} has no video stream")
                yield container
        except self.av.error.FFmpegError as error:
            raise ValueError(f"cannot read {self.path} as video: {_reason(error)}") from None

    def _decoded(self) -> Iterator[Any]:
        with self._open() as container:
            for count, frame in enumerate(container.decode(container.streams.video[0]), 1):
                yield frame
                if count == self.max_frames:
                    break

    def size(self) -> tuple[int, int, int]:
        """``(frames, height, width)`` of what iterating gives, by decoding without converting
        to RGB; ``ValueError`` when no frame can be decoded."""
        count, first = 0, None
        for frame in self._decoded():
            first = (frame.width, frame.height) if first is None else first
            count += 1
        if first is None:
            raise ValueError(f"{self.path}: no video frames could be decoded")
        width, height = self._scaled(*first)
        return count, height, width

    def _scaled(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, self.max_side / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    def __iter__(self) -> Iterator[np.ndarray]:
        size = None
        for frame in self._decoded():
            if size is None:
                size = self._scaled(frame.width, frame.height)
            yield frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def read_video(
    path: str | os.PathLike, max_frames: int = 16, *, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, float]:
    """The first ``max_frames`` frames of ``path`` as ``(D, H, W, 3)`` uint8 RGB, and the
    frame rate.  Frames whose larger side exceeds ``max_side`` are scaled down (aspect kept)."""
    reader = VideoReader(path, max_frames, max_side=max_side)
    frames = list(reader)
    if not frames:
        raise ValueError(f"{reader.path}: no video frames could be decoded")
    return np.stack(frames), reader.fps


def _encoder(av: ModuleType) -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _checked_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or 0 in frames.shape:
        raise ValueError(f"expected (D, H, W[, 3]) uint8 frames, got {frames.dtype} {frames.shape}")
    if frames.ndim == 4 and frames.shape[-1] != 3:
        raise ValueError(f"expected 3 colour channels, got {frames.shape[-1]}")
    return frames


class VideoWriter:
    """An MP4 file (H.264, or MPEG-4 Part 2 where libx264 is missing) written a few frames at a
    time: ``write`` takes ``(D, H, W, 3)`` RGB or ``(D, H, W)`` grey uint8 frames of one size.
    Odd sizes are padded by one edge row/column, which the 4:2:0 encoders require.  Use it as
    a context manager; the file is complete once the ``with`` block ends without an error.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 12.0) -> None:
        self.av = require_av()
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.fps = path, fps
        self.container: Any = None
        self.stream: Any = None
        self.shape: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self.container = self.av.open(str(self.path), "w", format="mp4")
        return self

    def write(self, frames: np.ndarray) -> None:
        """Encode ``frames`` after those written before."""
        frames = _checked_frames(frames)
        if self.shape is None:
            self._start(*frames.shape[1:3])
        elif frames.shape[1:3] != self.shape:
            raise ValueError(f"frames of size {frames.shape[1:3]} after frames of {self.shape}")
        height, width = self.shape
        for image in frames:
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            frame = self.av.VideoFrame.from_ndarray(image, format="rgb24")
            self.container.mux(self.stream.encode(frame))

    def _start(self, height: int, width: int) -> None:
        self.shape = (height, width)
        rate = Fraction(self.fps).limit_denominator(1001)
        self.stream = self.container.add_stream(_encoder(self.av), rate=rate)
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        if self.stream.codec_context.name == "libx264":
            self.stream.options = {"crf": "18"}

    def __exit__(self, kind: Any, *rest: Any) -> None:
        try:
            if kind is None and self.stream is not None:
                self.container.mux(self.stream.encode())
        finally:
            self.container.close()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write ``(D, H, W, 3)`` RGB or ``(D, H, W)`` grey uint8 frames as an MP4 (see
    :class:`VideoWriter`).  The format is MP4 whatever the file name says."""
    frames = _checked_frames(frames)
    with VideoWriter(path, fps) as writer:
        writer.write(frames)
