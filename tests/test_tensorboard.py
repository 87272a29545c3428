"""TensorBoard logging: the logger, ``image --tensorboard`` and ``train --tensorboard``.

Event files are read back without TensorBoard: TFRecord framing (length, CRC, payload, CRC)
around ``Event`` protocol buffers, decoded with the classes tensorboardX ships.
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2

from convscope.apps import tensorboard as tb
from convscope.apps import train as training
from convscope.cli import main
from convscope.tensor import Tensor


def read_events(logdir: Path) -> dict[str, list[tuple[int, object]]]:
    """tag -> [(step, float value or decoded (H, W, C) uint8 image)] from every event file."""
    found: dict[str, list[tuple[int, object]]] = {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for path in files:
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("image"):
                    with Image.open(io.BytesIO(value.image.encoded_image_string)) as picture:
                        content: object = np.asarray(picture)
                else:
                    content = value.simple_value
                found.setdefault(value.tag, []).append((event.step, content))
    return found


def run_cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_logger_writes_images_feature_maps_and_scalars(tmp_path):
    maps = np.stack([np.full((6, 5), -1.0), np.linspace(0, 9, 30).reshape(6, 5), np.zeros((6, 5))])
    with tb.open_logger(tmp_path / "logs") as logger:
        logger.add_image("input", np.random.default_rng(0).random((3, 6, 5)), step=2)
        logger.add_image("gray", np.linspace(-3, 3, 30).reshape(6, 5))
        logger.add_feature_maps("conv", maps, step=1)
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            logger.add_scalar("loss", loss, step)
    events = read_events(tmp_path / "logs")
    assert set(events) == {
        "input",
        "gray",
        "conv/channel_0",
        "conv/channel_1",
        "conv/channel_2",
        "conv/grid",
        "loss",
    }
    assert [(s, round(v, 6)) for s, v in events["loss"]] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    step, picture = events["input"][0]
    assert step == 2 and picture.shape[:2] == (6, 5)
    gray = events["gray"][0][1][..., 0]
    assert gray.min() == 0 and gray.max() == 255  # min-max scaled for display

    step, ramp = events["conv/channel_1"][0]
    assert step == 1 and ramp.shape[:2] == (6, 5)
    assert ramp[0, 0, 0] == 0 and ramp[-1, -1, 0] == 255  # each channel stretched on its own
    grid = events["conv/grid"][0][1][..., 0]
    assert grid.shape == (6 * 2 + 2, 5 * 2 + 2)  # 3 maps -> 2 x 2 cells, 2-pixel gaps
    assert grid[0, 0] == 0 and grid[5, 6] == 255  # one scale shared by the channels
    assert (grid[6:8] == 255).all()  # the white gap between rows


def test_logger_rejects_bad_shapes(tmp_path):
    with tb.open_logger(tmp_path) as logger:
        with pytest.raises(ValueError, match=r"\(H, W\) or \(3, H, W\)"):
            logger.add_image("x", np.zeros((4, 5, 5)))
        with pytest.raises(ValueError, match=r"\(C, H, W\)"):
            logger.add_feature_maps("x", np.zeros((2, 2, 3, 3)))


def test_missing_tensorboardx_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now fails
    with pytest.raises(tb.TensorBoardUnavailable, match=r'pip install "convscope\[tensorboard\]"'):
        tb.open_logger(tmp_path / "logs")
    assert issubclass(tb.TensorBoardUnavailable, RuntimeError)
    out = tmp_path / "out"
    code, _, stderr = run_cli(["image", "--tensorboard", tmp_path / "tb", "-o", out], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert 'pip install "convscope[tensorboard]"' in stderr
    assert not out.exists()


def test_image_command_logs_input_and_every_channel(tmp_path, capsys):
    for i in range(2):
        data = np.random.default_rng(i).integers(0, 256, (8, 10, 3), dtype=np.uint8)
        Image.fromarray(data).save(tmp_path / f"in{i}.png")
    logs = tmp_path / "logs"
    args = ["image", tmp_path / "in0.png", tmp_path / "in1.png", "-o", tmp_path / "out"]
    code, stdout, _ = run_cli([*args, "--tensorboard", logs, "--no-progress", "--no-sheet"], capsys)
    assert code == 0 and "tensorboard --logdir" in stdout
    events = read_events(logs)
    channels = {f"feature_maps/channel_{i}" for i in range(4)}
    assert {
        "input",
        "feature_maps/grid",
        "feature_maps/mean",
        "feature_maps/std",
    } | channels == set(events)
    assert [step for step, _ in events["input"]] == [0, 1]
    assert events["feature_maps/channel_3"][1][1].shape[:2] == (8, 10)


def test_train_logs_scalars_the_first_batch_and_conv_feature_maps(tmp_path):
    rng = np.random.default_rng(0)
    images = Tensor(rng.random((24, 1, 8, 8), dtype=np.float32))
    labels = Tensor(rng.integers(0, 3, 24))
    model = training.build_model(1, 3, 8, width=4)
    with tb.open_logger(tmp_path) as logger:
        history = training.train(
            model, (images, labels), (images, labels), epochs=2, batch_size=8, tensorboard=logger
        )
    events = read_events(tmp_path)
    for tag in ("loss/train", "loss/test", "accuracy/train", "accuracy/test"):
        assert [step for step, _ in events[tag]] == [1, 2]
    assert events["loss/test"][1][1] == pytest.approx(history.final.test_loss, rel=1e-6)
    step, batch = events["input/batch"][0]
    assert step == 0 and batch.shape[:2] == (3 * 8 + 2 * 2, 3 * 8 + 2 * 2)  # 8 images, 3 x 3
    assert {f"conv1/feature_maps/channel_{i}" for i in range(4)} <= set(events)
    assert [step for step, _ in events["conv1/feature_maps/grid"]] == [1, 2]


def test_train_command_flag(tmp_path, capsys):
    rng = np.random.default_rng(1)
    count = 40
    images, labels = tmp_path / "images-idx3-ubyte", tmp_path / "labels-idx1-ubyte"
    pixels = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
    images.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", count, 8, 8) + pixels.tobytes())
    targets = rng.integers(0, 2, count, dtype=np.uint8)
    labels.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", count) + targets.tobytes())
    logs = tmp_path / "logs"
    args = ["train", "--images", images, "--labels", labels, "--epochs", "1", "--no-progress"]
    code, stdout, _ = run_cli([*args, "-o", tmp_path / "out", "--tensorboard", logs], capsys)
    assert code == 0 and f"TensorBoard logs in {logs}" in stdout
    events = read_events(logs)
    assert {"loss/train", "accuracy/test", "input/batch", "conv1/feature_maps/grid"} <= set(events)
