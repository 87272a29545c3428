"""Audio: STFT and dB against librosa's formulas and torch, WAV and resampling round trips,
the Conv2d/Conv1d paths against torch, and ``convscope audio`` end to end and on bad input."""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import convscope as cs
from convscope.apps import audio
from convscope.apps.spectrogram import amplitude_to_db, hann_window, power_to_db, stft
from convscope.cli import audio as audio_cli
from convscope.cli import main
from convscope.io.audio import audio_info, load_audio, peak_normalize, resample, save_wav

SR = 16000


# ---------------------------------------------------------------- independent references


def reference_stft(y, n_fft, hop, win_length=None):
    """librosa's definition written out: periodic Hann of win_length centred in n_fft, signal
    zero-padded by n_fft // 2 on both sides, frame t = padded[t*hop : t*hop + n_fft], and a
    direct DFT (no FFT) of each windowed frame, rows 0..n_fft // 2."""
    win_length = win_length or n_fft
    n = np.arange(win_length)
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = 0.5 * (1 - np.cos(2 * np.pi * n / win_length))
    padded = np.concatenate([np.zeros(n_fft // 2), np.asarray(y, np.float64), np.zeros(n_fft // 2)])
    count = 1 + (len(padded) - n_fft) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)
    columns = [dft @ (padded[t * hop : t * hop + n_fft] * window) for t in range(count)]
    return np.stack(columns, axis=1)


def reference_db(magnitude, ref=1.0, amin=1e-5, top_db=80.0):
    db = 20 * np.log10(np.maximum(amin, magnitude)) - 20 * np.log10(max(amin, ref))
    return db if top_db is None else np.maximum(db, db.max() - top_db)


def signal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    tone = 0.5 * np.sin(2 * np.pi * 700 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)
    return (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------- STFT and decibels


@pytest.mark.parametrize(
    ("n", "n_fft", "hop", "win_length"),
    [(4000, 512, 256, None), (1000, 64, 16, None), (777, 100, 30, 60), (300, 63, 20, None)],
)
def test_stft_matches_direct_dft_of_hand_framed_signal(n, n_fft, hop, win_length):
    y = signal(n)
    ours = stft(y, n_fft=n_fft, hop_length=hop, win_length=win_length)
    expected = reference_stft(y, n_fft, hop, win_length)
    frames = 1 + (n + 2 * (n_fft // 2) - n_fft) // hop  # = 1 + n // hop for even n_fft
    assert ours.shape == expected.shape == (n_fft // 2 + 1, frames)
    assert ours.dtype == np.complex64
    np.testing.assert_allclose(ours, expected, atol=2e-4 * np.abs(expected).max())


def test_stft_defaults_are_librosas():
    y = signal(3000)
    default = stft(y)  # n_fft=2048, hop=512, win=2048, periodic hann, zero padding
    assert default.shape == (1025, 1 + 3000 // 512)
    np.testing.assert_allclose(default, reference_stft(y, 2048, 512), atol=1e-3)
    assert stft(y.astype(np.float64)).dtype == np.complex128
    reflected = stft(y, pad_mode="reflect")
    assert not np.allclose(reflected[:, 0], default[:, 0])  # the padding mode matters


def test_hann_window_periodic_and_symmetric():
    n = np.arange(8)
    np.testing.assert_allclose(hann_window(8), 0.5 - 0.5 * np.cos(2 * np.pi * n / 8))
    np.testing.assert_allclose(hann_window(8, periodic=False), np.hanning(8))


def test_stft_matches_torch_stft(reference):
    torch = reference
    y = signal(48000)
    ours = np.abs(stft(y, n_fft=512, hop_length=256))
    theirs = torch.stft(
        torch.from_numpy(y),
        512,
        hop_length=256,
        window=torch.hann_window(512, periodic=True),
        center=True,
        pad_mode="constant",
        return_complex=True,
    ).abs()
    assert ours.shape == tuple(theirs.shape) == (257, 188)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-3)


def test_amplitude_to_db_formula_ref_amin_top_db():
    magnitude = np.abs(stft(signal(8000), n_fft=256, hop_length=128)).astype(np.float64)
    np.testing.assert_allclose(amplitude_to_db(magnitude), reference_db(magnitude), atol=1e-9)
    np.testing.assert_allclose(
        amplitude_to_db(magnitude, ref=np.max, top_db=None),
        reference_db(magnitude, ref=magnitude.max(), top_db=None),
        atol=1e-9,
    )
    db = amplitude_to_db(np.array([2.0, 1.0, 0.0]), ref=2.0, amin=1e-3, top_db=None)
    np.testing.assert_allclose(db, [0.0, -20 * np.log10(2), -20 * np.log10(2000)])
    assert amplitude_to_db(np.array([10.0, 1e-9])).tolist() == [20.0, -60.0]  # top_db floor
    assert power_to_db(np.array([100.0, 1.0]), top_db=None).tolist() == [20.0, 0.0]
    with pytest.raises(ValueError, match="amin"):
        amplitude_to_db(magnitude, amin=0)
    with pytest.raises(ValueError, match="top_db"):
        amplitude_to_db(magnitude, top_db=-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_fft": 0}, "n_fft"),
        ({"hop_length": 0}, "hop_length"),
        ({"n_fft": 16, "win_length": 32}, "win_length"),
        ({"window": "hamming"}, "window"),
        ({"pad_mode": "wrap"}, "pad_mode"),
        ({"n_fft": 512, "center": False}, "too large"),
    ],
)
def test_stft_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stft(signal(100), **kwargs)


def test_spectrogram_shape_is_the_seeds():
    db = audio.spectrogram(signal(3 * SR))
    assert db.shape == (257, 188) and db.dtype == np.float32
    assert db.max() - db.min() <= 80.0 + 1e-4


# ---------------------------------------------------------------- the layers against torch


def _torch_conv(torch, layer):
    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d}[len(layer.kernel_size)]
    twin = cls(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
    )
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    return twin


def test_spectrogram_stack_matches_torch(reference):
    torch = reference
    y, _ = load_audio(audio.sample_path(), SR, start=1.5, end=4.5)
    db = audio.spectrogram(y)
    cs.manual_seed(1)
    model = audio.spectrogram_stack()
    maps = audio.feature_maps(list(model), db[None, None])
    assert [m.shape for m in maps] == [(1, 2, 257, 188), (1, 2, 257, 188)]
    assert tuple(model[0].weight.shape) == (2, 1, 3, 3)
    assert tuple(model[1].weight.shape) == (2, 2, 5, 5)
    h = torch.from_numpy(db[None, None].copy())
    with torch.no_grad():
        for layer, ours in zip(model, maps, strict=True):
            h = _torch_conv(torch, layer)(h)
            np.testing.assert_allclose(ours, h.numpy(), rtol=1e-4, atol=1e-3)


def test_configured_stack_and_conv1d_match_torch(reference):
    torch = reference
    cs.manual_seed(2)
    first = {"out_channels": 3, "kernel_size": (3, 5), "stride": 2, "padding": 1}
    second = {
        "out_channels": 3,
        "kernel_size": 3,
        "padding": 1,
        "groups": 3,
        "padding_mode": "reflect",
    }
    model = audio.spectrogram_stack(first, second)
    x = np.random.default_rng(0).standard_normal((1, 1, 40, 30)).astype(np.float32)
    maps = audio.feature_maps(list(model), x)
    h = torch.from_numpy(x)
    with torch.no_grad():
        for layer, ours in zip(model, maps, strict=True):
            h = _torch_conv(torch, layer)(h)
            np.testing.assert_allclose(ours, h.numpy(), rtol=1e-4, atol=1e-5)
    y = signal(2000)
    layer, out = audio.waveform_conv(y, {"out_channels": 2, "kernel_size": 9, "dilation": 2})
    with torch.no_grad():
        expected = _torch_conv(torch, layer)(torch.from_numpy(y[None, None].copy()))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert audio.waveform_conv(y)[0].kernel_size == (3,)  # the seed's Conv1d(1, 2, 3, 1, 1)


def test_map_positions_agree_with_centre_delta_kernels():
    """With a kernel that is 1 at its centre and 0 elsewhere, a layer copies the input cell its
    output sits on; feed the coordinates themselves and read back where each cell sits."""
    layers = [
        cs.nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding=(1, 0), bias=False),
        cs.nn.Conv2d(1, 1, 3, stride=2, dilation=2, padding="same", bias=False),
    ]
    for layer in layers:
        kernel = np.zeros(layer.weight.shape, dtype=np.float32)
        kernel[0, 0, layer.kernel_size[0] // 2, layer.kernel_size[1] // 2] = 1
        layer.weight.data[...] = kernel
    rows, cols = np.mgrid[0:21, 0:20].astype(np.float32) + 1  # +1: padding zeros stand out
    positions = audio.map_positions(layers, (21, 20))
    for axis, grid in ((0, rows), (1, cols)):
        maps = audio.feature_maps(layers, grid[None, None])
        for out, affine in zip(maps, positions, strict=True):
            scale, offset = affine[axis]
            index = np.arange(out.shape[2 + axis])
            expected = scale * index + offset + 1
            values = out[0, 0].take(0 if axis else out.shape[3] // 2, axis=1 - axis)
            inside = (expected >= 1) & (expected <= grid.shape[axis])
            np.testing.assert_array_equal(values[inside], expected[inside])
            assert inside.sum() >= len(index) - 1
    assert positions[0] == [(1, 0.0), (2, 2.0)]


# ---------------------------------------------------------------- files: WAV and resampling


def test_save_wav_peak_normalises_without_clipping(tmp_path):
    y = np.array([0.0, 0.25, -0.5, 2.0, -3.0, 1.5])
    save_wav(tmp_path / "a.wav", y, 8000)
    pcm, rate = sf.read(tmp_path / "a.wav", dtype="int16")
    assert rate == 8000 and sf.info(tmp_path / "a.wav").subtype == "PCM_16"
    assert np.abs(pcm).max() == 32767 and pcm[4] == -32767  # the peak reaches full scale
    np.testing.assert_allclose(pcm / 32767, y / 3.0, atol=1 / 32767)


def test_save_wav_round_trip_without_normalising(tmp_path):
    y = signal(SR) * 0.9
    save_wav(tmp_path / "b.wav", y, SR, normalize=False)
    back, rate = sf.read(tmp_path / "b.wav", dtype="float64")
    assert rate == SR and back.shape == y.shape
    np.testing.assert_allclose(back * 32768 / 32767, y, atol=1.5 / 32767)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        save_wav(tmp_path / "c.wav", y * 2, SR, normalize=False)
    with pytest.raises(ValueError, match="NaN"):
        save_wav(tmp_path / "d.wav", np.array([0.1, np.nan]), SR)
    save_wav(tmp_path / "silence.wav", np.zeros(100), SR)
    assert not sf.read(tmp_path / "silence.wav", dtype="int16")[0].any()
    assert peak_normalize(np.array([0.0, -0.2])).tolist() == [0.0, -1.0]


def test_save_wav_stereo_and_name_without_extension(tmp_path):
    save_wav(tmp_path / "no-extension.part", np.stack([signal(100), -signal(100)]), SR)
    data, _ = sf.read(tmp_path / "no-extension.part")
    assert data.shape == (100, 2)


def _dominant_frequency(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()]


@pytest.mark.parametrize(
    ("name", "subtype"), [("tone.wav", "PCM_16"), ("tone.flac", "PCM_24"), ("tone.ogg", "VORBIS")]
)
def test_resampling_keeps_a_440_hz_tone(tmp_path, name, subtype):
    rate = 44100
    tone = 0.6 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)
    sf.write(tmp_path / name, tone, rate, subtype=subtype)
    y, sr = load_audio(tmp_path / name, 16000)
    assert sr == 16000 and y.dtype == np.float32
    assert len(y) == 2 * 16000
    assert abs(_dominant_frequency(y, sr) - 440) < 1.0
    assert abs(np.abs(y[1000:-1000]).max() - 0.6) < 0.02  # the level survives
    excerpt, _ = load_audio(tmp_path / name, 16000, start=0.5, end=1.0)  # decoded after a seek
    np.testing.assert_allclose(excerpt, y[8000:16000], atol=1e-3)
    assert resample(tone.astype(np.float32), rate, 16000).dtype == np.float32


def test_excerpt_equals_the_whole_file_resampled_then_sliced(tmp_path):
    rate = 22050
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, 3 * rate)
    sf.write(tmp_path / "n.flac", noise, rate, subtype="PCM_24")
    whole, _ = load_audio(tmp_path / "n.flac", SR)
    part, _ = load_audio(tmp_path / "n.flac", SR, start=1.2345, end=2.5)
    np.testing.assert_allclose(part, whole[int(1.2345 * SR) : int(2.5 * SR)], atol=1e-6)
    tail, _ = load_audio(tmp_path / "n.flac", SR, start=2.9, end=50)  # clamped to the file
    np.testing.assert_allclose(tail, whole[int(2.9 * SR) :], atol=1e-6)


def test_stereo_is_averaged_to_mono_and_native_rate_kept(tmp_path):
    left = 0.5 * np.ones(800)
    sf.write(tmp_path / "s.wav", np.stack([left, -0.25 * np.ones(800)], axis=1), 8000)
    mono, sr = load_audio(tmp_path / "s.wav", None)
    assert sr == 8000 and np.allclose(mono, 0.125, atol=1e-4)
    both, _ = load_audio(tmp_path / "s.wav", None, mono=False)
    assert both.shape == (2, 800)
    info = audio_info(tmp_path / "s.wav")
    assert (info.samplerate, info.channels, info.frames, info.duration) == (8000, 2, 800, 0.1)


def test_bundled_sample_covers_the_default_range():
    info = audio_info(audio.sample_path())
    assert info.samplerate == 16000 and info.channels == 1
    assert audio.END < info.duration < 8 and audio.sample_path().stat().st_size < 250_000
    y, _ = load_audio(audio.sample_path(), SR, start=audio.START, end=audio.END)
    assert y.shape == (48000,) and np.abs(y).max() > 0.1  # speech, not silence


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage" * 10, b"just some text\n"])
def test_load_audio_rejects_unreadable_files(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"broken\.wav"):
        load_audio(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_audio(tmp_path / "missing.flac")
    with pytest.raises(ValueError, match="not before end"):
        load_audio(audio.sample_path(), start=2.0, end=1.0)


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def stereo_file(tmp_path_factory):
    """Two seconds of a 44.1 kHz stereo chirp-and-tone WAV."""
    rate = 44100
    t = np.arange(2 * rate) / rate
    left = 0.4 * np.sin(2 * np.pi * (300 + 400 * t) * t)
    right = 0.3 * np.sin(2 * np.pi * 1200 * t)
    path = tmp_path_factory.mktemp("audio") / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")
    return path


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_command_on_the_bundled_sample(tmp_path, capsys):
    assert main(["audio", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "(1, 1, 257, 188)",
        "weight (2, 1, 3, 3)  bias (2,)  output (1, 2, 257, 188)",
        "weight (2, 2, 5, 5)  bias (2,)  output (1, 2, 257, 188)",
        "1.5-4.5 s = 48000 samples at 16000 Hz",
    ):
        assert expected in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "conv1_channel_0.png",
        "conv1_channel_1.png",
        "conv2_channel_0.png",
        "conv2_channel_1.png",
        "spectrogram.png",
    ]
    assert all(_png_size(tmp_path / name) == (800, 400) for name in names)


def test_command_conv1d_writes_wavs(tmp_path, capsys):
    assert main(["audio", "--conv1d", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "weight (2, 1, 3)  bias (2,)  output (1, 2, 48000)" in out
    assert {p.name for p in tmp_path.iterdir()} == {
        "waveforms.png",
        "input.wav",
        "conv1d_channel_0.wav",
        "conv1d_channel_1.wav",
    }
    for name in ("conv1d_channel_0.wav", "conv1d_channel_1.wav", "input.wav"):
        info = sf.info(tmp_path / name)
        assert (info.channels, info.samplerate, info.frames) == (1, 16000, 48000)
        pcm, _ = sf.read(tmp_path / name, dtype="int16")
        assert np.abs(pcm.astype(np.int32)).max() == 32767  # peak-normalised, never clipped
    assert _png_size(tmp_path / "waveforms.png")[0] == 1000


def test_command_on_a_generated_file_with_options(stereo_file, tmp_path, capsys):
    options = (
        "--start 0.5 --end 1.5 --n-fft 256 --hop-length 128 --out-channels 3 --kernel-size 3,5 "
        "--stride 2 --padding same --kernel-size-2 3 --padding-2 1"
    )
    assert main(["audio", str(stereo_file), *options.split(), "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # 16000 samples, hop 128 -> 126 frames; 'same' with stride 2 -> ceil(129/2), ceil(126/2)
    assert "(1, 1, 129, 126)" in out
    assert "output (1, 3, 65, 63)" in out and "output (1, 3, 33, 32)" in out
    assert len(list(tmp_path.glob("conv*_channel_*.png"))) == 6


def test_command_conv1d_with_stride_writes_the_lower_rate(stereo_file, tmp_path, capsys):
    options = "--conv1d --start 0 --end 1 --stride 2 --out-channels 1 --kernel-size 5 --padding 2"
    assert main(["audio", str(stereo_file), *options.split(), "-o", str(tmp_path)]) == 0
    info = sf.info(tmp_path / "conv1d_channel_0.wav")
    assert (info.samplerate, info.frames) == (8000, 8000)
    assert "written at 8000 Hz" in capsys.readouterr().out


def test_command_clamps_the_range_with_a_warning_and_logs_tensorboard(
    stereo_file, tmp_path, capsys
):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2

    logdir = tmp_path / "tb"
    options = ["--start", "1", "--end", "30", "--layers", "1", "--tensorboard", str(logdir)]
    assert main(["audio", str(stereo_file), *options, "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"convscope audio: warning: {stereo_file} is only 2.00 s long; using 1-2.00 s"
    )
    assert "(1, 1, 257, 63)" in captured.out  # 16000 samples, hop 256
    (events,) = logdir.glob("events.out.tfevents.*")
    tags, data, i = [], events.read_bytes(), 0
    while i < len(data):  # TFRecord framing: length, crc, payload, crc
        (length,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
        tags += [(v.tag, v.image.height, v.image.width) for v in event.summary.value]
        i += 16 + length
    assert tags == [
        ("audio/spectrogram", 257, 63),
        ("audio/conv1/channel_0", 257, 63),
        ("audio/conv1/channel_1", 257, 63),
        ("audio/conv1/grid", 257, 128),
    ]


def test_long_ranges_are_capped_with_a_warning(tmp_path, capsys):
    sf.write(tmp_path / "long.wav", np.zeros(61 * 8000, dtype=np.int16), 8000)
    excerpt = audio_cli.load_excerpt(str(tmp_path / "long.wav"), 0.5, 1000.0)
    assert excerpt.samples.shape == (60 * 16000,) and excerpt.end == 60.5
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        f"convscope audio: warning: {tmp_path / 'long.wav'} is only 61.00 s long; "
        "using 0.5-61.00 s",
        "convscope audio: warning: analysing at most 60 s: using 0.5-60.5 s",
    ]


def test_missing_tensorboardx_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    argv = ["audio", "--tensorboard", str(tmp_path / "tb"), "-o", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "convscope[tensorboard]"' in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "tb").exists()


def test_demo_writes_both_paths(tmp_path, capsys):
    audio_cli.demo(tmp_path / "audio")
    out = capsys.readouterr().out
    assert "(1, 1, 257, 188)" in out and "output (1, 2, 48000)" in out
    written = {p.name for p in (tmp_path / "audio").iterdir()}
    assert {"spectrogram.png", "conv2_channel_1.png", "conv1d_channel_1.wav"} <= written
    assert not {"conv2_channel_2.png", "conv1d_channel_2.wav"} & written  # numbered from 0


def test_help_lists_the_options_and_examples(capsys):
    with pytest.raises(SystemExit) as done:
        main(["audio", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    options = (
        "--out-channels --kernel-size --stride --padding --dilation --groups --padding-mode "
        "--no-bias --start --end --conv1d --tensorboard --n-fft --hop-length --output examples:"
    )
    for option in options.split():
        assert option in text


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 3)
    (tmp_path / "notes.txt").write_text("not audio\n")
    (tmp_path / "a-file").write_text("in the way\n")
    return tmp_path


BAD_AUDIO = [
    (["{dir}/missing.wav"], "no such file"),
    (["{dir}/corrupt.wav"], "cannot read"),
    (["{dir}/notes.txt"], "cannot read"),
    # a folder is a batch now (issue 13): tests/test_folder_batch.py
    (["--start", "3", "--end", "2"], "must be before --end"),
    (["--start", "-1"], "0 s or later"),
    (["--start", "nan"], "finite"),
    (["--start", "7", "--end", "9"], "past the end"),
    (["--kernel-size", "x"], "--kernel-size"),
    (["--out-channels", "0"], "--out-channels"),
    (["--groups", "3"], "divisible by groups"),
    (["--stride", "0"], "stride"),
    (["--padding", "causal"], "padding"),
    (["--kernel-size", "400"], "Kernel size"),
    (["--kernel-size-2", "5,5,5"], "kernel_size"),
    (["--n-fft", "0"], "--n-fft"),
    (["--hop-length", "1", "--start", "0", "--end", "5"], "--hop-length"),
    (["--conv1d", "--kernel-size", "3,3"], "weight"),
    (["--conv1d", "--padding", "1:2,0:1"], "padding"),
    (["-o", "{dir}/a-file"], "not a folder"),
    (["-o", "{dir}/a-file/sub"], "cannot create output folder"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_AUDIO, ids=[" ".join(a) for a, _ in BAD_AUDIO])
def test_bad_input_exits_2_with_one_line(bad_files, capsys, argv, message):
    before = {p.name: _digest(p) for p in bad_files.iterdir() if p.is_file()}
    out = bad_files / "out"
    argv = [a.format(dir=bad_files) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(out)]
    assert main(["audio", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convscope audio: error: "), err
    assert message in err and "Traceback" not in err
    assert {p.name: _digest(p) for p in bad_files.iterdir() if p.is_file()} == before
    assert not out.exists()  # nothing written, not even the folder


# ------------------------------------------------ failures leave nothing behind (issue 14, 6)
@pytest.fixture
def failing_wav(monkeypatch):
    """The second WAV written fails (after waveforms.png and input.wav were written)."""
    calls = []
    save = audio.save_wav

    def fail_second(path, samples, sr):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        save(path, samples, sr)

    monkeypatch.setattr(audio, "save_wav", fail_second)
    return calls


def test_nan_audio_is_refused_before_any_file(tmp_path, capsys):
    y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    y[100] = np.nan
    sf.write(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    for mode in ([], ["--conv1d"]):
        out = tmp_path / "a" / "b"
        argv = ["audio", str(tmp_path / "nan.wav"), "--start", "0", "--end", "1", "-o", str(out)]
        assert main([*argv, *mode]) == 2
        assert capsys.readouterr().err.count("\n") == 1
        assert not (tmp_path / "a").exists()


def test_a_failed_write_removes_its_files_and_the_folders_it_made(failing_wav, tmp_path, capsys):
    argv = ["audio", "--conv1d"]
    assert main([*argv, "-o", str(tmp_path / "new" / "deeper")]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # waveforms.png and input.wav were written first
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    failing_wav.clear()
    assert main([*argv, "-o", str(kept)]) == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # no partial or hidden files


def test_a_folder_whose_every_file_fails_leaves_no_output_folder(tmp_path, monkeypatch, capsys):
    def full(path, samples, sr):
        raise OSError("No space left on device")

    monkeypatch.setattr(audio, "save_wav", full)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, np.zeros(8000), 8000)
    argv = ["audio", str(folder), "--conv1d", "--start", "0", "--end", "1", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "out" / "sub")]) == 1
    assert capsys.readouterr().err.count("No space left on device") == 2
    assert not (tmp_path / "out").exists()


def test_a_failed_tensorboard_log_keeps_no_pictures(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboardX")

    def broken(logger, arrays):
        raise OSError("disk full")

    monkeypatch.setattr(audio_cli, "log_tensorboard", broken)
    out, logs = tmp_path / "out", tmp_path / "tb"
    argv = ["audio", "--layers", "1", "-o", str(out), "--tensorboard", str(logs)]
    assert main(argv) == 2
    assert "disk full" in capsys.readouterr().err
    assert not out.exists()
