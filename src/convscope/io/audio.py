"""Audio files in and out: read WAV/FLAC/OGG as float32 at a chosen rate, write 16-bit WAV.

Reading uses soundfile (libsndfile) and soxr's high-quality resampler - the pair behind
``librosa.load`` (``res_type='soxr_hq'``) - and decodes only the requested time range, so a
three-second excerpt of a long file costs three seconds of decoding.  Problems raise
``FileNotFoundError`` or ``ValueError`` with a message that names the file.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "tone.wav"
...     save_wav(path, tone, 8000)
...     y, sr = load_audio(path, sr=16000, start=0.25, end=0.75)
>>> y.shape, y.dtype, sr
((8000,), dtype('float32'), 16000)
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: longest excerpt :func:`load_audio` decodes in one call (seconds)
MAX_SECONDS = 600.0
#: context decoded on each side of an excerpt so the resampler's edges match a whole-file run
_MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says: native rate, channels, length in samples, container."""

    path: Path
    samplerate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.samplerate


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def _unreadable(path: Path, error: Exception) -> ValueError:
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    reason = re.sub(r"^Error opening .*?: ", "", reason)  # libsndfile repeats the path
    return ValueError(f"cannot read {path} as audio (WAV, FLAC, OGG): {reason}")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts of an audio file; ``ValueError`` if libsndfile cannot read it."""
    import soundfile as sf

    path = _check_file(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.SoundFileError) as error:
        raise _unreadable(path, error) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError(f"{path} contains no audio samples")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.format)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr's high-quality filter (float32 stays float32).

    >>> resample(np.ones(441, dtype=np.float32), 44100, 16000).shape
    (160,)
    """
    import soxr

    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} and {target_sr}")
    y = np.asarray(y)
    if orig_sr == target_sr:
        return y
    if y.ndim == 1:
        return soxr.resample(y, orig_sr, target_sr, quality="HQ")
    # soxr wants (samples, channels)
    return soxr.resample(y.T, orig_sr, target_sr, quality="HQ").T.copy()


def load_audio(
    path: str | os.PathLike,
    sr: int | None = 16000,
    *,
    start: float = 0.0,
    end: float | None = None,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Samples ``[start, end)`` seconds of ``path`` at rate ``sr`` (``None``: the file's own).

    Returns ``(y, sr)`` with ``y`` float32 in [-1, 1]: shape ``(n,)`` when ``mono`` (channels
    averaged, as librosa does), else ``(channels, n)``.  The excerpt is
    ``whole[int(start * sr):int(end * sr)]`` of the whole file resampled, but only the
    excerpt (plus a short margin) is decoded.  ``end`` beyond the file is clamped silently;
    callers that want a warning compare with :func:`audio_info` first.
    """
    import soundfile as sf

    info = audio_info(path)
    target = info.samplerate if sr is None else int(sr)
    if target <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    end = info.duration if end is None else min(float(end), info.duration)
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a time >= 0 s, got {start}")
    if not end > start:
        raise ValueError(f"nothing to read: start {start:g} s is not before end {end:g} s")
    if end - start > MAX_SECONDS:
        raise ValueError(f"{end - start:.1f} s requested; at most {MAX_SECONDS:g} s at a time")

    first, stop = int(start * target), int(end * target)
    # Decode whole resampling blocks: native sample k*block_in is exactly output sample
    # k*block_out, so the excerpt lines up with the whole file resampled.
    g = math.gcd(info.samplerate, target)
    block_in, block_out = info.samplerate // g, target // g
    margin = math.ceil(_MARGIN_SECONDS * target)
    k_first = max(0, (first - margin) // block_out)
    k_stop = -(-(stop + margin) // block_out)
    read_from, read_to = k_first * block_in, min(info.frames, k_stop * block_in)
    try:
        with sf.SoundFile(str(info.path)) as handle:
            handle.seek(read_from)
            data = handle.read(read_to - read_from, dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as error:
        raise _unreadable(info.path, error) from None
    if data.size == 0:
        raise ValueError(f"{info.path}: no audio samples between {start:g} s and {end:g} s")
    channels = data.T  # (channels, n)
    if mono:
        channels = channels.mean(axis=0)
    resampled = resample(np.ascontiguousarray(channels), info.samplerate, target)
    offset = k_first * block_out
    excerpt = resampled[..., first - offset : stop - offset]
    return np.ascontiguousarray(excerpt, dtype=np.float32), target


def peak_normalize(samples: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """``samples`` scaled so the largest magnitude is ``peak`` (silence stays silence).

    >>> peak_normalize(np.array([0.1, -0.5, 0.25]))
    array([ 0.2, -1. ,  0.5])
    """
    samples = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(samples)):
        raise ValueError("samples contain NaN or infinity")
    largest = np.abs(samples).max(initial=0.0)
    return samples * (peak / largest) if largest > 0 else samples.copy()


def save_wav(
    path: str | os.PathLike, samples: np.ndarray, sr: int, *, normalize: bool = True
) -> None:
    """Write 16-bit PCM WAV; ``samples`` is ``(n,)`` or ``(channels, n)`` floats.

    With ``normalize`` the peak is scaled to full scale; without it samples must already lie
    in [-1, 1] - nothing is ever clipped.  The format is WAV whatever the file name says.
    """
    import soundfile as sf

    samples = np.asarray(samples)
    if samples.ndim not in (1, 2) or samples.shape[-1] == 0:
        raise ValueError(f"expected (n,) or (channels, n) samples, got shape {samples.shape}")
    if int(sr) <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if normalize:
        samples = peak_normalize(samples)
    else:
        samples = np.asarray(samples, dtype=np.float64)
        if not np.all(np.isfinite(samples)) or np.abs(samples).max() > 1:
            raise ValueError("samples must be finite and within [-1, 1] (or use normalize=True)")
    pcm = np.rint(samples * 32767).astype(np.int16)  # |x| <= 1 maps into +-32767: no overflow
    sf.write(str(path), pcm.T, int(sr), format="WAV", subtype="PCM_16")
