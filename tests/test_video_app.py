"""Video: MP4 round trips through PyAV, Conv3d against torch, ``convscope video`` end to end,
on bad input, and without PyAV installed."""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.apps import video
from convscope.cli import main
from convscope.io.video import MissingDependencyError, read_video, require_av, write_video

#: the tests that decode or encode need PyAV; the ones simulating its absence do not
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV missing")


def moving_square(frames=6, height=32, width=48):
    """A white square moving right over black: an easy clip to recognise after encoding."""
    clip = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        clip[t, 8:20, 4 + 4 * t : 16 + 4 * t] = 255
    return clip


@needs_av
def test_write_then_read_round_trip(tmp_path):
    clip = moving_square()
    write_video(tmp_path / "square.mp4", clip, fps=10)
    back, fps = read_video(tmp_path / "square.mp4", max_frames=100)
    assert back.shape == clip.shape and back.dtype == np.uint8 and fps == 10.0
    assert np.abs(back.astype(int) - clip).mean() < 6  # lossy, but the same picture
    assert back[3, 14, 4 + 4 * 3 + 6].min() > 200 and back[3, 28, 2].max() < 40


@needs_av
def test_odd_sizes_and_grey_frames_are_written(tmp_path):
    grey = np.linspace(0, 255, 5 * 15 * 21).reshape(5, 15, 21).astype(np.uint8)
    write_video(tmp_path / "odd.bin", grey, fps=7.5)  # the name does not choose the format
    back, fps = read_video(tmp_path / "odd.bin")
    assert back.shape == (5, 16, 22, 3) and fps == 7.5  # padded to even for 4:2:0
    assert np.abs(back[:, :15, :21, 1].astype(int) - grey).mean() < 4
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", grey.astype(np.float32))


@needs_av
def test_read_caps_frames_and_scales_large_frames_down(tmp_path):
    write_video(tmp_path / "big.mp4", np.full((4, 120, 200, 3), 90, np.uint8), fps=5)
    frames, _ = read_video(tmp_path / "big.mp4", max_frames=2, max_side=50)
    assert frames.shape == (2, 30, 50, 3)
    with pytest.raises(ValueError, match="max_frames"):
        read_video(tmp_path / "big.mp4", max_frames=0)


@needs_av
def test_bundled_clip_loads_as_the_seeds_tensor():
    clip, fps = video.load_clip()
    assert clip.shape == (1, 3, 16, 96, 128) and clip.dtype == np.float32 and fps == 12.0
    assert clip.min() >= 0 and clip.max() <= 1 and clip.std() > 0.05
    assert video.sample_path().stat().st_size < 200_000
    assert read_video(video.sample_path(), max_frames=100)[0].shape[0] == 24


@needs_av
def test_conv3d_matches_torch(reference):
    torch = reference
    clip, _ = video.load_clip(frames=5)
    cs.manual_seed(4)
    layer, out = video.video_conv(clip)
    assert out.shape == (1, 4, 5, 96, 128)
    twin = torch.nn.Conv3d(3, 4, 3, 1, 1)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        twin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        expected = twin(torch.from_numpy(clip)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_channel_frames_use_one_scale_for_the_whole_clip():
    channel = np.array([[[0.0, 1.0]], [[2.0, 4.0]]])  # (D=2, H=1, W=2)
    assert video.channel_frames(channel).tolist() == [[[0, 64]], [[128, 255]]]
    assert not video.channel_frames(np.full((2, 3, 3), 7.0)).any()


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@needs_av
def test_command_on_the_bundled_clip(tmp_path, capsys):
    assert main(["video", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(1, 3, 16, 96, 128)" in out
    assert "weight (4, 3, 3, 3, 3)  bias (4,)  output (1, 4, 16, 96, 128)" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["comparison.png"] + [f"output_channel_{c}.mp4" for c in range(4)]
    assert _png_size(tmp_path / "comparison.png") == (1260, 740)  # 3 x 2 panels
    for name in names[1:]:
        frames, fps = read_video(tmp_path / name, max_frames=100)
        assert frames.shape == (16, 96, 128, 3) and fps == 12.0
        assert frames.max() - frames.min() > 100  # the channel's range fills the grey scale


@needs_av
def test_command_with_conv_options_on_a_generated_clip(tmp_path, capsys):
    source = tmp_path / "square.mp4"
    write_video(source, moving_square(frames=5), fps=10)
    digest = _digest(source)
    options = "--frames 8 --out-channels 2 --kernel-size 3,5,5 --stride 2 --padding 1,2,2"
    assert main(["video", str(source), *options.split(), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "only 5 of the 8 frames" in out
    assert "output (1, 2, 3, 16, 24)" in out
    videos = sorted((tmp_path / "out").glob("output_channel_*.mp4"))
    assert len(videos) == 2
    frames, fps = read_video(videos[0])
    assert frames.shape == (3, 16, 24, 3) and fps == 5.0  # stride 2 in time halves the rate
    assert _digest(source) == digest  # the input is never modified


def test_help_lists_the_options_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["video", "--help"])
    text = capsys.readouterr().out
    options = (
        "--frames --out-channels --kernel-size --stride --padding --dilation --groups "
        "--padding-mode --no-bias --output examples: convscope[video]"
    )
    for option in options.split():
        assert option in text


def test_without_pyav_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[video\]"'):
        require_av()
    assert main(["video", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "convscope video: error: video files need PyAV, which is not installed: "
        'pip install "convscope[video]"\n'
    )
    assert not (tmp_path / "out").exists()


def test_without_pyav_an_import_hook_failure_is_reported_the_same(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av" or name.startswith("av."):
            raise ModuleNotFoundError("No module named 'av'", name="av")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "av", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_av)
    assert main(["video", str(tmp_path / "whatever.mp4"), "-o", str(tmp_path / "o")]) == 2
    assert 'pip install "convscope[video]"' in capsys.readouterr().err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "a-file").write_text("in the way\n")
    import soundfile as sf

    sf.write(tmp_path / "sound.wav", np.zeros(800), 8000)
    return tmp_path


BAD_VIDEO = [
    (["{dir}/missing.mp4"], "no such file"),
    (["{dir}/corrupt.mp4"], "cannot read"),
    (["{dir}/notes.txt"], "cannot read"),
    (["{dir}/sound.wav"], "no video stream"),
    (["{dir}"], "is not a file"),
    (["--frames", "0"], "--frames"),
    (["--frames", "100000"], "--frames"),
    (["--frame", "16"], "past the last frame"),
    (["--frame", "-1"], "--frame"),
    (["--max-size", "1"], "--max-size"),
    (["--kernel-size", "3,3"], "weight"),
    (["--kernel-size", "a"], "--kernel-size"),
    (["--groups", "2"], "divisible by groups"),
    (["--padding", "causal"], "padding"),
    (["--dilation", "0"], "dilation"),
    (["--kernel-size", "40"], "Kernel size"),
    (["-o", "{dir}/a-file"], "not a folder"),
    (["-o", "{dir}/a-file/sub"], "cannot create output folder"),
]


@needs_av
@pytest.mark.parametrize(("argv", "message"), BAD_VIDEO, ids=[" ".join(a) for a, _ in BAD_VIDEO])
def test_bad_input_exits_2_with_one_line(bad_files, capsys, argv, message):
    before = {p.name: _digest(p) for p in bad_files.iterdir() if p.is_file()}
    out = bad_files / "out"
    argv = [a.format(dir=bad_files) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(out)]
    assert main(["video", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convscope video: error: "), err
    assert message in err and "Traceback" not in err
    assert {p.name: _digest(p) for p in bad_files.iterdir() if p.is_file()} == before
    assert not out.exists()
