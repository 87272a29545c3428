"""Regenerate the bundled audio and video samples in src/convscope/samples/.

    python tools/make_samples.py            # both
    python tools/make_samples.py audio      # speech.flac only (needs espeak-ng on PATH)
    python tools/make_samples.py video      # clip.mp4 only (needs PyAV)

speech.flac: espeak-ng (Debian package ``espeak-ng``) speaks SENTENCE; the 22.05 kHz output is
resampled to 16 kHz mono with soxr's high-quality filter, peak-normalised to -1 dBFS and stored
as 16-bit FLAC.  clip.mp4: CLIP_FRAMES frames of coloured shapes moving over a gradient, drawn
with NumPy and encoded as H.264 by PyAV.  Both are deterministic for a given tool version.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "convscope" / "samples"

SENTENCE = "A convolution slides a small kernel along the signal and adds up what it sees."
VOICE, WORDS_PER_MINUTE = "en-us", 145
SAMPLE_RATE = 16_000
PEAK = 10 ** (-1 / 20)  # -1 dBFS

CLIP_FRAMES, CLIP_HEIGHT, CLIP_WIDTH, CLIP_FPS = 24, 96, 128, 12


def make_audio(path: Path) -> None:
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "espeak.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(wav), SENTENCE],
            check=True,
        )
        speech, rate = sf.read(wav, dtype="float64", always_2d=True)
    mono = speech.mean(axis=1)
    resampled = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    resampled *= PEAK / np.abs(resampled).max()
    sf.write(path, resampled, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    print(f"{path}: {len(resampled) / SAMPLE_RATE:.2f} s, {path.stat().st_size} bytes")


def clip_frames() -> np.ndarray:
    """``(CLIP_FRAMES, H, W, 3)`` uint8: a red disc crossing left to right, a green square
    falling, a blue bar turning, over a dim diagonal gradient."""
    h, w = CLIP_HEIGHT, CLIP_WIDTH
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    background = np.stack([20 + 40 * x / w, 20 + 30 * y / h, 60 + 40 * (1 - x / w)], axis=-1)
    frames = []
    for t in range(CLIP_FRAMES):
        phase = t / (CLIP_FRAMES - 1)
        image = background.copy()
        cx, cy = 12 + phase * (w - 24), 0.35 * h
        image[(x - cx) ** 2 + (y - cy) ** 2 <= 11**2] = (230, 40, 40)
        sx, sy = 0.7 * w, 8 + phase * (h - 30)
        image[(abs(x - sx) <= 9) & (abs(y - sy) <= 9)] = (40, 210, 60)
        angle = np.pi * phase
        u = (x - 0.3 * w) * np.cos(angle) + (y - 0.72 * h) * np.sin(angle)
        v = -(x - 0.3 * w) * np.sin(angle) + (y - 0.72 * h) * np.cos(angle)
        image[(abs(u) <= 18) & (abs(v) <= 4)] = (60, 90, 240)
        frames.append(image)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def make_video(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(CLIP_FPS))
        stream.width, stream.height, stream.pix_fmt = CLIP_WIDTH, CLIP_HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        for frame in clip_frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    print(f"{path}: {CLIP_FRAMES} frames {CLIP_WIDTH}x{CLIP_HEIGHT}, {path.stat().st_size} bytes")


def main(argv: list[str]) -> int:
    wanted = set(argv) or {"audio", "video"}
    if not wanted <= {"audio", "video"}:
        print("usage: python tools/make_samples.py [audio] [video]", file=sys.stderr)
        return 2
    if "audio" in wanted:
        make_audio(SAMPLES / "speech.flac")
    if "video" in wanted:
        make_video(SAMPLES / "clip.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
