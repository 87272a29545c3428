"""Write animation frames as GIF or animated WebP (Pillow) or MP4 (PyAV, optional).

>>> from PIL import Image
>>> import io
>>> frames = [Image.new("RGB", (8, 6), c) for c in ("white", "blue", "cyan")]
>>> buffer = io.BytesIO()
>>> save(frames, buffer, "gif", duration=100)
>>> Image.open(buffer).n_frames
3
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

FORMATS = ("gif", "webp", "mp4")
MP4_HINT = "MP4 needs PyAV: pip install 'convscope[video]' (or use --format gif)"


def check_format(format: str) -> None:
    """Raise ``ValueError`` for an unknown format, ``RuntimeError`` when its writer is missing."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "webp":
        from PIL import features

        if not features.check("webp"):
            raise RuntimeError("this Pillow was built without WebP support; use --format gif")
    if format == "mp4":
        try:
            import av  # noqa: F401
        except ImportError:
            raise RuntimeError(MP4_HINT) from None


def _durations(count: int, duration: int, hold_last: int) -> list[int]:
    return [int(duration)] * (count - 1) + [int(duration) * max(1, hold_last)]


def save(
    frames: Sequence[Any],
    path: str | os.PathLike | Any,
    format: str = "gif",
    *,
    duration: int = 700,
    hold_last: int = 3,
) -> None:
    """Write ``frames`` (PIL images of one size) to ``path`` (a path or a binary file object).

    ``duration`` is the time per frame in milliseconds; the last frame stays ``hold_last``
    times as long so the finished output can be read before the loop restarts.
    """
    if not frames:
        raise ValueError("no frames to save")
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration} ms")
    check_format(format)
    times = _durations(len(frames), duration, hold_last)
    if format == "mp4":
        _save_mp4(frames, path, times)
        return
    options = {"lossless": True} if format == "webp" else {"optimize": False}
    if format == "gif":
        frames = _paletted(frames)
    frames[0].save(
        path,
        format=format.upper(),
        save_all=True,
        append_images=list(frames[1:]),
        duration=times,
        loop=0,
        **options,
    )


def _paletted(frames: Sequence[Any], samples: int = 8, spacing: int = 18) -> list[Any]:
    """GIF frames on one shared palette taken from a few frames, exact for the flat fills.

    Pillow would quantize each frame on its own: slower, and median cut averages even the
    fills (white becomes (252, 252, 252)).  Here the most frequent colours (the fills) enter
    the palette first and any colour closer than ``spacing`` to one already in is skipped, so
    the anti-aliased edges of text snap to their neighbours and the fills stay exact.
    """
    from PIL import Image

    step = max(1, len(frames) // samples)
    counts: dict[tuple[int, ...], int] = {}
    for frame in frames[::step]:
        for count, colour in frame.convert("RGB").getcolors(frame.width * frame.height):
            counts[colour] = counts.get(colour, 0) + count
    kept: list[np.ndarray] = []
    for colour in sorted(counts, key=counts.__getitem__, reverse=True):
        candidate = np.array(colour)
        if all(((candidate - k) ** 2).sum() >= spacing**2 for k in kept):
            kept.append(candidate)
            if len(kept) == 256:
                break
    palette = Image.new("P", (1, 1))
    flat = np.array(kept).reshape(-1).tolist()
    palette.putpalette(flat + flat[-3:] * (256 - len(kept)))
    return [f.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


def _save_mp4(frames: Sequence[Any], path: Any, times: Sequence[int]) -> None:
    import av
    from PIL import Image

    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)  # yuv420p needs even sizes
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    clock = Fraction(1, 1000)  # timestamps in milliseconds: each frame shown for its duration
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(1000, min(times)))
        stream.width, stream.height = even
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = clock
        if codec == "libx264":
            stream.options = {"crf": "18"}
        start = 0
        for image, ms in [*zip(frames, times, strict=True), (frames[-1], 0)]:
            canvas = Image.new("RGB", even, "white")
            canvas.paste(image.convert("RGB"), (0, 0))
            frame = av.VideoFrame.from_image(canvas)
            frame.pts, frame.time_base = start, clock
            start += ms
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
