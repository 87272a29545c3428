"""Short-time Fourier transform and decibels, with librosa's formulas and defaults, on NumPy.

``stft`` matches ``librosa.stft`` (n_fft=2048, hop_length=win_length//4, win_length=n_fft,
periodic Hann window zero-padded to n_fft, centred frames with zero padding - librosa's
``pad_mode='constant'``); ``amplitude_to_db`` matches ``librosa.amplitude_to_db`` (ref=1.0,
amin=1e-5, top_db=80).  librosa itself is not needed.

>>> import numpy as np
>>> sr, n_fft = 16000, 512
>>> y = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
>>> S = stft(y, n_fft=n_fft, hop_length=256)
>>> S.shape, S.dtype
((257, 63), dtype('complex64'))
>>> float(fft_frequencies(sr=sr, n_fft=n_fft)[np.abs(S[:, 30]).argmax()])
1000.0
>>> db = amplitude_to_db(np.abs(S))
>>> round(float(db.max() - db.min()), 3)  # top_db clips the range to 80 dB
80.0
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PAD_MODES = ("constant", "reflect", "edge")


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def hann_window(length: int, *, periodic: bool = True) -> np.ndarray:
    """Hann window (float64); ``periodic`` (the STFT's choice, ``scipy``'s ``fftbins=True``)
    drops the last point of the symmetric window of ``length + 1``.

    >>> hann_window(4)
    array([0. , 0.5, 1. , 0.5])
    >>> hann_window(5, periodic=False)
    array([0. , 0.5, 1. , 0.5, 0. ])
    """
    length = _positive_int(length, "window length")
    if length == 1:
        return np.ones(1)
    period = length if periodic else length - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / period)


def stft(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Complex STFT of a 1-D signal, shape ``(1 + n_fft // 2, frames)``, like ``librosa.stft``.

    Frame ``t`` covers ``y_padded[t * hop_length : t * hop_length + n_fft]``; with ``center``
    the signal is first padded by ``n_fft // 2`` on both sides (``pad_mode``: ``'constant'``
    zeros, ``'reflect'`` or ``'edge'``), so frame ``t`` is centred on sample
    ``t * hop_length``.  ``window`` is ``'hann'`` or an array of ``win_length`` values,
    zero-padded to ``n_fft`` in the middle.  float32 input gives complex64, else complex128.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"stft expects a 1-D signal, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"stft expects floating-point samples, got {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ValueError("audio buffer is not finite everywhere")
    n_fft = _positive_int(n_fft, "n_fft")
    win_length = n_fft if win_length is None else _positive_int(win_length, "win_length")
    if win_length > n_fft:
        raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
    hop_length = (
        max(win_length // 4, 1) if hop_length is None else _positive_int(hop_length, "hop_length")
    )
    if isinstance(window, str):
        if window not in ("hann", "hanning"):
            raise ValueError(f"unknown window {window!r}: give 'hann' or an array")
        taps = hann_window(win_length)
    else:
        taps = np.asarray(window, dtype=np.float64)
        if taps.shape != (win_length,):
            raise ValueError(f"window must have shape ({win_length},), got {taps.shape}")
    left = (n_fft - win_length) // 2
    fft_window = np.zeros(n_fft)
    fft_window[left : left + win_length] = taps

    signal = y.astype(np.float64)
    if center:
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        signal = np.pad(signal, n_fft // 2, mode=pad_mode)
    if signal.size < n_fft:
        raise ValueError(f"n_fft={n_fft} is too large for a signal of length {y.size}")
    frames = np.lib.stride_tricks.sliding_window_view(signal, n_fft)[::hop_length]
    spectrum = np.fft.rfft(frames * fft_window, axis=-1).T
    complex_type = np.complex64 if y.dtype == np.float32 else np.complex128
    return np.ascontiguousarray(spectrum, dtype=complex_type)


def power_to_db(
    S: np.ndarray,
    *,
    ref: float | Callable[[np.ndarray], float] = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """``10 * log10(max(amin, S) / max(amin, ref))``, then floored at ``max - top_db``.

    >>> power_to_db(np.array([1.0, 0.1, 0.0]), top_db=None)
    array([   0.,  -10., -100.])
    """
    if amin <= 0:
        raise ValueError("amin must be strictly positive")
    magnitude = np.abs(S) if np.iscomplexobj(S) else np.asarray(S)
    ref_value = ref(magnitude) if callable(ref) else np.abs(ref)
    log_spec = 10.0 * np.log10(np.maximum(amin, magnitude))
    log_spec = log_spec - 10.0 * np.log10(np.maximum(amin, ref_value))
    if top_db is not None:
        if top_db < 0:
            raise ValueError("top_db must be non-negative")
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


def amplitude_to_db(
    S: np.ndarray,
    *,
    ref: float | Callable[[np.ndarray], float] = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Amplitude to decibels: ``power_to_db(|S|**2, ref=ref**2, amin=amin**2, top_db)``.

    >>> amplitude_to_db(np.array([1.0, 0.1, 1e-7]))
    array([  0., -20., -80.])
    """
    magnitude = np.abs(S)
    ref_value = ref(magnitude) if callable(ref) else np.abs(ref)
    return power_to_db(magnitude**2, ref=ref_value**2, amin=amin**2, top_db=top_db)


def fft_frequencies(*, sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency in Hz of each STFT row: ``k * sr / n_fft``.

    >>> fft_frequencies(sr=16000, n_fft=8)
    array([   0., 2000., 4000., 6000., 8000.])
    """
    return np.arange(1 + n_fft // 2) * sr / n_fft


def frames_to_time(frames: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    """Time in seconds of (centred) STFT frames: ``frame * hop_length / sr``.

    >>> frames_to_time(np.arange(3), sr=16000, hop_length=256)
    array([0.   , 0.016, 0.032])
    """
    return np.asarray(frames) * hop_length / sr
