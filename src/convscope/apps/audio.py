"""Convolutions on sound: a spectrogram through two Conv2d layers, a waveform through Conv1d.

The spectrogram path (tutorial seed 000): 16 kHz mono audio, seconds 1.5-4.5, STFT magnitude
in dB with librosa's formulas (:mod:`convscope.apps.spectrogram`), then
``Conv2d(1, 2, 3, padding=1)`` and ``Conv2d(2, 2, 5, padding=2)``: ``(1, 1, 257, 188)`` in,
``(1, 2, 257, 188)`` out of each layer.  The waveform path (seed 001): ``Conv1d(1, 2, 3, 1, 1)``
on ``(1, 1, L)``.  Figures are matplotlib ``Figure`` objects (no GUI); saving is the caller's.

>>> import numpy as np
>>> import convscope as cs
>>> y = np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1
>>> db = spectrogram(y)  # n_fft=512, hop_length=256: 3 s at 16 kHz
>>> db.shape
(257, 188)
>>> _ = cs.manual_seed(0)
>>> maps = feature_maps(spectrogram_stack(), db[None, None])
>>> [m.shape for m in maps]
[(1, 2, 257, 188), (1, 2, 257, 188)]
>>> layer, out = waveform_conv(y)
>>> layer, out.shape
(Conv1d(1, 2, kernel_size=(3,), stride=(1,), padding=(1,)), (1, 2, 48000))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import geometry, nn
from ..autograd import no_grad
from ..creation import from_numpy
from ..io.audio import audio_info, load_audio, peak_normalize, resample, save_wav
from .spectrogram import (
    amplitude_to_db,
    fft_frequencies,
    frames_to_time,
    hann_window,
    power_to_db,
    stft,
)

__all__ = [
    "END",
    "HOP_LENGTH",
    "N_FFT",
    "SAMPLE",
    "SAMPLE_RATE",
    "START",
    "amplitude_to_db",
    "audio_info",
    "feature_map_figure",
    "feature_maps",
    "fft_frequencies",
    "figure_to_rgb",
    "frames_to_time",
    "hann_window",
    "load_audio",
    "map_colours",
    "map_positions",
    "peak_normalize",
    "power_to_db",
    "resample",
    "sample_path",
    "save_wav",
    "spectrogram",
    "spectrogram_figure",
    "spectrogram_stack",
    "stft",
    "waveform_conv",
    "waveform_figure",
]

SAMPLE = "speech.flac"  #: bundled English sentence, 16 kHz mono, 5.4 s
SAMPLE_RATE = 16000
START, END = 1.5, 4.5  #: the seed's excerpt in seconds
N_FFT, HOP_LENGTH = 512, 256  #: the seed's STFT: 257 frequency rows, 188 frames for 3 s

#: the seed's layers (keyword arguments after ``in_channels``)
SEED_CONV1 = {"out_channels": 2, "kernel_size": 3, "stride": 1, "padding": 1}
SEED_CONV2 = {"out_channels": 2, "kernel_size": 5, "stride": 1, "padding": 2}
SEED_CONV1D = {"out_channels": 2, "kernel_size": 3, "stride": 1, "padding": 1}

MAX_PLOTTED_CHANNELS = 8


def sample_path() -> Path:
    """Path of the bundled speech sample."""
    from .. import samples

    return samples.path(SAMPLE)


def spectrogram(
    y: np.ndarray,
    *,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    center: bool = True,
    pad_mode: str = "constant",
    ref: float = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """``amplitude_to_db(|stft(y)|)`` as float32, shape ``(1 + n_fft // 2, frames)``.

    The STFT and dB defaults are librosa's; ``n_fft``/``hop_length`` default to the seed's
    512/256 (librosa's own default would be 2048/512).
    """
    magnitude = np.abs(
        stft(y, n_fft=n_fft, hop_length=hop_length, center=center, pad_mode=pad_mode)
    )
    return amplitude_to_db(magnitude, ref=ref, amin=amin, top_db=top_db).astype(np.float32)


def spectrogram_stack(
    first: Mapping[str, Any] | None = None,
    second: Mapping[str, Any] | None = None,
    *,
    layers: int = 2,
) -> nn.Sequential:
    """The seed's ``Conv2d(1, 2, 3, padding=1) -> Conv2d(2, 2, 5, padding=2)``.

    ``first``/``second`` are ``Conv2d`` keyword arguments (without ``in_channels``) replacing
    the seed's; ``layers=1`` keeps only the first layer.

    >>> spectrogram_stack({"out_channels": 4, "kernel_size": 3, "padding": 1}, layers=1)
    Sequential(
      (conv1): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    )
    """
    from collections import OrderedDict

    if layers not in (1, 2):
        raise ValueError(f"layers must be 1 or 2, got {layers}")
    first = dict(SEED_CONV1 if first is None else first)
    modules = OrderedDict(conv1=nn.Conv2d(1, **first))
    if layers == 2:
        second = dict(SEED_CONV2 if second is None else second)
        modules["conv2"] = nn.Conv2d(first["out_channels"], **second)
    return nn.Sequential(modules)


def waveform_conv(
    y: np.ndarray, conv: Mapping[str, Any] | None = None
) -> tuple[nn.Conv1d, np.ndarray]:
    """Apply ``Conv1d(1, **conv)`` (default the seed's ``Conv1d(1, 2, 3, 1, 1)``) to the
    signal ``y`` as ``(1, 1, L)``; returns the layer and its output ``(1, C, L')``."""
    layer = nn.Conv1d(1, **dict(SEED_CONV1D if conv is None else conv))
    (out,) = feature_maps([layer], np.asarray(y, dtype=np.float32)[None, None])
    return layer, out


def feature_maps(layers: Sequence[nn.Module], x: np.ndarray) -> list[np.ndarray]:
    """Outputs of each layer in turn (no autograd graph), starting from the array ``x``."""
    outputs = []
    with no_grad():
        h = from_numpy(np.ascontiguousarray(x))
        for layer in layers:
            h = layer(h)
            outputs.append(h.numpy())
    return outputs


def map_positions(
    layers: Sequence[nn.Module], spatial: Sequence[int]
) -> list[list[tuple[float, float]]]:
    """Where each layer's output cells sit on its first input's grid.

    For each layer, one ``(scale, offset)`` per spatial axis: output index ``j`` is centred on
    input coordinate ``scale * j + offset`` (the middle of its receptive field), so feature
    maps can be drawn in seconds and Hz even after strides and asymmetric padding.

    >>> map_positions([nn.Conv1d(1, 1, 3, stride=2), nn.Conv1d(1, 1, 5, stride=2)], [100])
    [[(2, 1.0)], [(4, 5.0)]]
    """
    affine = [(1, 0.0)] * len(spatial)
    size = list(spatial)
    result = []
    for layer in layers:
        n = len(size)
        kernel = geometry.ntuple(layer.kernel_size, n, "kernel_size")
        stride = geometry.ntuple(layer.stride, n, "stride")
        dilation = geometry.ntuple(layer.dilation, n, "dilation")
        pads = geometry.resolve_padding(
            geometry.normalize_padding(layer.padding, n), size, kernel, stride, dilation
        )
        affine = [
            (a * s, b + a * (d * (k - 1) / 2 - lo))
            for (a, b), s, d, k, (lo, _) in zip(affine, stride, dilation, kernel, pads, strict=True)
        ]
        size = list(geometry.conv_output_shape(size, kernel, stride, pads, dilation))
        result.append(affine)
    return result


def _image_extent(times: np.ndarray, freqs: np.ndarray) -> list[float]:
    def edges(centres: np.ndarray) -> tuple[float, float]:
        step = centres[1] - centres[0] if len(centres) > 1 else 1.0
        return centres[0] - step / 2, centres[-1] + step / 2

    return [*edges(times), *edges(freqs)]


#: colour maps of :func:`feature_map_figure`: the seed's for magnitudes, blue-white-red for
#: signed values (white = 0)
SEQUENTIAL_CMAP, DIVERGING_CMAP = "inferno", "RdBu_r"


def map_colours(image: np.ndarray, scale: str = "auto") -> tuple[str, float | None, float | None]:
    """``(cmap, vmin, vmax)`` for a time-frequency image: ``"sequential"`` is the seed's
    ``inferno`` on the image's own range; ``"diverging"`` is blue-white-red, symmetric around 0
    (white); ``"auto"`` picks diverging when the image holds both signs.

    >>> map_colours(np.array([[-1.0, 4.0]]))
    ('RdBu_r', -4.0, 4.0)
    >>> map_colours(np.array([[-80.0, 0.0]]))
    ('inferno', None, None)
    """
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if scale == "auto":
        scale = "diverging" if low < 0 < high else "sequential"
    if scale == "sequential":
        return SEQUENTIAL_CMAP, None, None
    if scale == "diverging":
        limit = max(abs(low), abs(high)) or 1.0
        return DIVERGING_CMAP, -limit, limit
    raise ValueError(f"unknown scale {scale!r} (choose from auto, sequential, diverging)")


def feature_map_figure(
    image: np.ndarray,
    times: np.ndarray,
    freqs: np.ndarray,
    *,
    title: str,
    colorbar_label: str = "dB",
    scale: str = "auto",
):
    """A time-frequency image (rows = frequency) with ``origin='lower'``, axes in seconds and
    Hz and a labelled colour bar; colours by :func:`map_colours` (``inferno`` for one sign,
    blue-white-red centred on 0 for signed values, e.g. conv outputs)."""
    from matplotlib.figure import Figure

    cmap, vmin, vmax = map_colours(image, scale)
    figure = Figure(figsize=(8, 4), dpi=100)
    # fixed margins: as tidy as a constrained layout for one panel, and twice as fast to save
    figure.subplots_adjust(left=0.1, right=0.92, bottom=0.12, top=0.86)
    axes = figure.add_subplot()
    shown = axes.imshow(
        image,
        aspect="auto",
        origin="lower",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        extent=_image_extent(np.asarray(times), np.asarray(freqs)),
        interpolation="nearest",
    )
    if cmap == DIVERGING_CMAP:
        colorbar_label += " (white = 0)"
    rows, frames = np.shape(image)
    axes.set_title(f"{title}\n{rows} x {frames} (H x W: frequency bins x time frames)")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    figure.colorbar(shown, ax=axes, label=colorbar_label, fraction=0.05, pad=0.02)
    return figure


def spectrogram_figure(
    db: np.ndarray,
    *,
    sr: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    start: float = 0.0,
    title: str = "Spectrogram",
):
    """The dB spectrogram against seconds (from ``start``) and Hz."""
    times = start + frames_to_time(np.arange(db.shape[1]), sr=sr, hop_length=hop_length)
    return feature_map_figure(
        db,
        times,
        fft_frequencies(sr=sr, n_fft=n_fft),
        title=title,
        colorbar_label="dB",
        scale="sequential",
    )


def waveform_figure(
    y: np.ndarray,
    outputs: np.ndarray,
    *,
    sr: int,
    start: float = 0.0,
    out_positions: tuple[float, float] = (1, 0.0),
    title: str = "Conv1d on the waveform",
):
    """Input signal on top, one panel per output channel below (at most
    ``MAX_PLOTTED_CHANNELS``), sharing a time axis in seconds.

    ``outputs`` is ``(C, L')``; ``out_positions`` is the ``(scale, offset)`` of
    :func:`map_positions` placing output sample ``j`` at input sample ``scale * j + offset``.
    """
    from matplotlib.figure import Figure

    shown = outputs[:MAX_PLOTTED_CHANNELS]
    rows = 1 + len(shown)
    figure = Figure(figsize=(10, 1.3 + 1.5 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot(start + np.arange(len(y)) / sr, y, lw=0.5, color="tab:blue")
    axes[0].set_title(f"input ({len(y)} samples at {sr} Hz)")
    scale, offset = out_positions
    out_times = start + (scale * np.arange(outputs.shape[1]) + offset) / sr
    step = f" (stride {scale:g})" if scale != 1 else ""
    for channel, (ax, signal) in enumerate(zip(axes[1:], shown, strict=False)):
        if np.nanmin(signal) < 0 < np.nanmax(signal):  # signed output: where 0 is
            ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
        ax.plot(out_times, signal, lw=0.5, color="tab:orange")
        ax.set_title(f"output channel {channel}: {outputs.shape[1]} samples{step}")
    for ax in axes:
        ax.set_ylabel("amplitude")
    axes[-1].set_xlabel("time (s)")
    more = f" (first {len(shown)} of {len(outputs)} channels)" if len(outputs) > len(shown) else ""
    figure.suptitle(title + more)
    return figure


def figure_to_rgb(figure) -> np.ndarray:
    """Render a matplotlib figure to a ``(3, H, W)`` uint8 array (for TensorBoard)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1))
