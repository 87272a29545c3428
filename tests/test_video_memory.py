"""``convscope video`` streams: peak memory does not grow with --frames, the videos are the
frames the whole-clip computation gives, a clip that can never fit the budget is refused up
front, and a failure while writing leaves no partial output or empty folder (issue 14, items
5 and 6)."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.apps import video, video_stream
from convscope.cli import main
from convscope.io import video as video_io

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("av") is None and os.environ.get("CI") != "true",
    reason="PyAV missing",
)

MIB = 1 << 20


def _clip(path: Path, frames: int, height: int, width: int) -> Path:
    """Dim noise with a bright square moving right: every frame differs."""
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 40, (frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        left = (3 * t) % (width - height // 3)
        clip[t, height // 5 : height // 2, left : left + height // 3] = 250
    video_io.write_video(path, clip, fps=24)
    return path


PEAK = """
import resource, sys
from convscope.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
sys.exit(code)
"""


def _peak_bytes(argv: list[str], budget: int) -> int:
    env = dict(os.environ, CONVSCOPE_WORKSPACE_BYTES=str(budget))
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "streaming" in done.stdout  # the run went chunk by chunk
    return int(done.stdout.split()[-1])


def test_peak_memory_does_not_grow_with_the_frames(tmp_path):
    height, width, channels, budget = 96, 128, 2, 16 * MIB
    source = _clip(tmp_path / "long.mp4", 256, height, width)
    common = ["video", str(source), "--out-channels", str(channels)]
    short = _peak_bytes([*common, "--frames", "16", "-o", str(tmp_path / "a")], budget)
    long = _peak_bytes([*common, "--frames", "256", "-o", str(tmp_path / "b")], budget)
    # what the whole-clip computation held beyond the short run: 240 more input frames and
    # output frames in float32 (59 MB here, and it measured 77 MB more)
    whole = 240 * (3 + channels) * height * width * 4
    # streaming can only add the convolution's scratch (the budget) and a longer chunk
    bound = budget + budget // video_stream.CHUNK_SHARE + 8 * MIB
    assert whole > 2 * bound
    assert long - short < bound, (short / MIB, long / MIB)
    frames, _ = video_io.read_video(tmp_path / "b" / "output_channel_1.mp4", max_frames=256)
    assert frames.shape == (256, height, width, 3)


@pytest.fixture
def written(monkeypatch):
    """Every frame array handed to an encoder, by file name."""
    frames: dict[str, list[np.ndarray]] = {}
    write = video_io.VideoWriter.write

    def record(self, batch):
        name = Path(self.path).name[1:].rsplit(".", 2)[0]  # the staged file's final name
        frames.setdefault(name, []).append(np.array(batch))
        write(self, batch)

    monkeypatch.setattr(video_io.VideoWriter, "write", record)
    return frames


CONVS = [
    ("", {}),
    (
        "--padding-mode reflect --kernel-size 3,3,5 --padding 2,1,2 --stride 2,1,2",
        {
            "padding_mode": "reflect",
            "kernel_size": (3, 3, 5),
            "padding": (2, 1, 2),
            "stride": (2, 1, 2),
        },
    ),
    (
        "--padding-mode circular --kernel-size 5,3,3 --padding 4,1,1",
        {"padding_mode": "circular", "kernel_size": (5, 3, 3), "padding": (4, 1, 1)},
    ),
    (
        "--padding same --dilation 2,1,1 --padding-mode replicate",
        {"padding": "same", "dilation": (2, 1, 1), "padding_mode": "replicate"},
    ),
]


def _expected(source: Path, conv: dict, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Today's whole-clip path: the clip in memory, one Conv3d call, each channel scaled."""
    options = {"out_channels": 3, "kernel_size": 3, "padding": 1, **conv}
    cs.manual_seed(0)
    clip, fps = video.load_clip(source, frames)
    layer, out = video.video_conv(clip, options)
    figure = video.comparison_figure(clip, out, layer=layer, frame=frames // 2, fps=fps)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return [video.channel_frames(channel) for channel in out[0]], png.getvalue()


@pytest.mark.parametrize(("options", "conv"), CONVS, ids=[o or "default" for o, _ in CONVS])
def test_videos_hold_the_whole_clip_frames(tmp_path, written, capsys, options, conv):
    source = _clip(tmp_path / "in.mp4", 20, 30, 40)
    expected, png = _expected(source, conv, 20)
    argv = ["video", str(source), "--frames", "20", "--out-channels", "3", *options.split()]
    # one chunk (the default budget): the frames and picture are today's, bit for bit
    assert main([*argv, "-o", str(tmp_path / "one")]) == 0
    assert "streaming" not in capsys.readouterr().out
    for channel, frames in enumerate(expected):
        assert np.array_equal(np.concatenate(written.pop(f"output_channel_{channel}.mp4")), frames)
    assert (tmp_path / "one" / "comparison.png").read_bytes() == png
    # a budget so small that every chunk is one or two output frames and each channel is
    # encoded in its own pass: the same frames (a grey level apart where a value's last bit
    # changed with the GEMM's shape)
    with cs.workspace_budget(video.encoder_bytes(30, 40) + MIB // 2):
        assert main([*argv, "-o", str(tmp_path / "chunks")]) == 0
    assert "streaming" in capsys.readouterr().out
    for channel, frames in enumerate(expected):
        parts = written[f"output_channel_{channel}.mp4"]
        assert len(parts) > 4
        got = np.concatenate(parts).astype(int)
        assert np.abs(got - frames).max() <= 1 and (got == frames).mean() > 0.999
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "comparison.png",
        *(f"output_channel_{c}.mp4" for c in range(3)),
    ]


def test_a_clip_that_can_never_fit_is_refused_up_front(tmp_path, capsys):
    source = _clip(tmp_path / "in.mp4", 4, 30, 40)
    out = tmp_path / "deep" / "out"
    with cs.workspace_budget(2 * MIB):  # less than one encoder
        assert main(["video", str(source), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convscope video: error: one output frame")
    assert "CONVSCOPE_WORKSPACE_BYTES" in err
    assert not (tmp_path / "deep").exists()
    argv = ["video", "--out-channels", "4096", "--kernel-size", "3,99,99", "-o", str(out)]
    assert main(argv) == 2
    assert "the Conv3d weight of shape 4096x3x3x99x99" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("budget", [None, 9 * MIB], ids=["one-chunk", "streamed"])
def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch, capsys, budget):
    source = _clip(tmp_path / "in.mp4", 12, 30, 40)
    calls = []
    write = video_io.VideoWriter.write

    def fail_later(self, batch):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("No space left on device")
        write(self, batch)

    monkeypatch.setattr(video_io.VideoWriter, "write", fail_later)
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    for out in (tmp_path / "new" / "deeper", kept):
        calls.clear()
        with cs.workspace_budget(budget or cs.get_workspace_budget()):
            assert main(["video", str(source), "--frames", "12", "-o", str(out)]) == 2
        captured = capsys.readouterr()
        assert "No space left on device" in captured.err
        assert ("streaming" in captured.out) == (budget is not None)
    assert not (tmp_path / "new").exists()
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # no partial or hidden files


def test_an_output_never_replaces_the_input(tmp_path, capsys):
    source = _clip(tmp_path / "output_channel_1.mp4", 4, 30, 40)
    before = source.read_bytes()
    assert main(["video", str(source), "-o", str(tmp_path)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert source.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["output_channel_1.mp4"]


def test_reader_and_writer_work_a_few_frames_at_a_time(tmp_path):
    frames = np.random.default_rng(2).integers(0, 255, (9, 15, 21), dtype=np.uint8)
    with video_io.VideoWriter(tmp_path / "pieces.mp4", fps=6) as writer:
        for piece in (frames[:4], frames[4:5], frames[5:]):
            writer.write(piece)
        with pytest.raises(ValueError, match="after frames of"):
            writer.write(np.zeros((1, 16, 21), np.uint8))
    reader = video_io.VideoReader(tmp_path / "pieces.mp4", max_frames=5, max_side=11)
    assert reader.size() == (5, 8, 11) and reader.fps == 6.0  # scaled to 11 px wide, even
    decoded = iter(reader)
    assert next(decoded).shape == (8, 11, 3)  # one frame decoded, not the clip
    assert len(list(decoded)) == 4
    back, _ = video_io.read_video(tmp_path / "pieces.mp4", max_frames=100)
    assert back.shape == (9, 16, 22, 3)  # odd sizes padded for 4:2:0
    assert np.abs(back[:, :15, :21, 0].astype(int) - frames).mean() < 12
