"""``convscope.summary`` and ``convscope summary``: hand counts and torchinfo's own figures."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import convscope as cs
from convscope import nn
from convscope.cli import main
from convscope.explain import summary


# ----------------------------------------------------------------- the same models in both
def seed_block(lib):
    return lib.Sequential(
        lib.Conv2d(3, 32, 3, padding=1), lib.BatchNorm2d(32), lib.ReLU(), lib.MaxPool2d(2)
    )


def small_cnn(lib):
    return lib.Sequential(
        lib.Conv2d(1, 16, 3, padding=1),
        lib.BatchNorm2d(16),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(16, 32, 3, padding=1),
        lib.BatchNorm2d(32),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(32 * 2 * 2, 10),
    )


def nested_1d(lib):
    return lib.Sequential(
        lib.Conv1d(2, 4, 5),
        lib.Sequential(lib.Conv1d(4, 4, 3, groups=2, dilation=2), lib.ReLU(), lib.Dropout(0.5)),
        lib.ConvTranspose1d(4, 2, 4, stride=2, bias=False),
    )


def volumes(lib):
    return lib.Sequential(
        lib.Conv3d(1, 4, 3, padding=1, padding_mode="replicate"),
        lib.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1),
        lib.AdaptiveAvgPool3d(1),
        lib.Flatten(),
        lib.Linear(2, 3),
    )


def custom(lib):
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Conv2d(3, 8, 3, padding=1)
            self.blocks = lib.ModuleList([lib.Conv2d(8, 8, 3, padding=1) for _ in range(2)])
            self.shared = lib.Conv2d(8, 8, 1)
            self.scale = lib.Parameter(cs.ones(1) if lib is nn else __import__("torch").ones(1))
            self.head = lib.Sequential(lib.AdaptiveAvgPool2d(1), lib.Flatten(), lib.Linear(8, 5))
            self.stem.weight.requires_grad = False  # a frozen layer: trainable < total

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = self.shared(block(x))  # `shared` runs twice: (recursive)
            return self.head(x * self.scale)

    return Net()


MODELS = [
    (seed_block, (4, 3, 32, 32)),
    (small_cnn, (2, 1, 8, 8)),
    (nested_1d, (3, 2, 20)),
    (volumes, (1, 1, 4, 6, 6)),
    (custom, (2, 3, 8, 8)),
]


def _torchinfo_rows(stats):
    fmt = stats.formatting
    rows = []
    for info in stats.summary_list:
        at_max = info.depth == fmt.max_depth
        label = fmt.get_start_str(info.depth) + info.get_layer_name(False, True)
        rows.append(
            (
                label,
                info.output_size or None,
                info.num_params_to_str(at_max),
                info.macs_to_str(at_max),
            )
        )
    return rows


@pytest.mark.parametrize(("build", "size"), MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_matches_torchinfo(reference, build, size):
    torchinfo = pytest.importorskip("torchinfo")
    theirs = torchinfo.summary(build(reference.nn), size, verbose=0)
    ours = summary(build(nn), size)
    assert ours.total_params == theirs.total_params
    assert ours.trainable_params == theirs.trainable_params
    assert ours.total_mult_adds == theirs.total_mult_adds
    assert ours.forward_backward_bytes == theirs.total_output_bytes
    assert ours.params_bytes == 4 * ours.total_params
    rows = [(r.label, r.output_shape or None, *ours._cells(r)[-2:]) for r in ours.rows]
    assert rows == _torchinfo_rows(theirs)


def test_hand_counts():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, groups=2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )
    s = cs.summary(model, (2, 1, 8, 8))
    conv1, conv2, linear = 4 * 9 + 4, 8 * 2 * 9 + 8, 32 * 10 + 10
    assert s.total_params == s.trainable_params == conv1 + conv2 + linear == 522
    # torchinfo's rule: (weight + bias) x N x output positions; other layers x N
    assert s.total_mult_adds == conv1 * 2 * 8 * 8 + conv2 * 2 * 2 * 2 + linear * 2 == 6996
    assert [r.output_shape for r in s.rows] == [
        [2, 10],
        [2, 4, 8, 8],
        [2, 4, 8, 8],
        [2, 4, 4, 4],
        [2, 8, 2, 2],
        [2, 32],
        [2, 10],
    ]
    assert s.input_size_bytes == 2 * 64 * 4
    assert s.forward_backward_bytes == 2 * 4 * (2 * 4 * 64 + 2 * 8 * 4 + 2 * 10)
    assert s.params_bytes == 522 * 4
    assert s.estimated_total_bytes == s.input_size_bytes + s.forward_backward_bytes + 522 * 4
    text = str(s)
    assert "├─Conv2d: 1-4" in text and "Total params: 522" in text
    assert "Total mult-adds: 6,996" in text and "Estimated Total Size (MB)" in text
    shown = cs.summary(model, (2, 1, 8, 8), depth=0, show_kernel_size=True)
    assert "Kernel Shape" in str(shown) and "Conv2d" not in str(shown)
    assert shown.total_params == 522


def test_model_is_left_as_it_was():
    model = small_cnn(nn)
    model.train()
    before = model[1].running_mean.numpy().copy()
    summary(model, (2, 1, 8, 8))
    assert all(m.training for m in model.modules())
    assert all("forward" not in m.__dict__ for m in model.modules())
    np.testing.assert_array_equal(model[1].running_mean.numpy(), before)
    with pytest.raises(RuntimeError, match="failed in Linear '9'"):
        summary(model, (2, 1, 16, 16))
    assert all("forward" not in m.__dict__ for m in model.modules())
    with pytest.raises(ValueError, match="input_size"):
        summary(model, (2, 0, 8, 8))


def test_float64_model_gets_float64_zeros():
    model = nn.Sequential(nn.Conv1d(1, 2, 3)).double()
    s = summary(model, (1, 1, 5))
    assert s.input_size_bytes == 5 * 8 and s.params_bytes == 8 * 8


def test_import_stays_light_and_summary_is_lazy():
    code = (
        "import sys, convscope; assert 'convscope.explain' not in sys.modules; "
        "f = convscope.summary; assert 'convscope.explain.summary' in sys.modules; "
        "from convscope.explain import summary; assert f is summary"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- command line
MODEL_FILE = """
import convscope.nn as nn
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
input_size = (1, 3, 8, 8)
"""


def _run(capsys, *argv):
    code = main(["summary", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_python_model(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL_FILE)
    code, out, _ = _run(capsys, path, "--show-kernel")
    assert code == 0 and "Kernel Shape" in out and "[1, 8, 8, 8]" in out
    code, out, _ = _run(capsys, path, "--input-size", "4,3,8,8", "--json")
    data = json.loads(out)
    assert data["total_params"] == 224 + 1290 and data["rows"][1]["output_shape"] == [4, 8, 8, 8]


def test_cli_training_checkpoint(tmp_path, capsys):
    from convscope.apps.train import build_model

    model = build_model(1, 10, 8)
    meta = {"in_channels": 1, "num_classes": 10, "image_size": 8}
    cs.save({"state_dict": model.state_dict(), "meta": meta}, tmp_path / "model.cs")
    code, out, _ = _run(capsys, tmp_path / "model.cs", "--json")
    data = json.loads(out)
    assert code == 0 and data["input_size"] == [1, 1, 8, 8]
    assert data["total_params"] == sum(int(np.prod(p.shape)) for p in model.parameters())
    cs.save(model.state_dict(), tmp_path / "weights.cs")
    code, out, err = _run(capsys, tmp_path / "weights.cs")
    assert code == 2 and "holds weights but not the network" in err


@pytest.mark.parametrize(
    ("content", "argv", "message"),
    [
        (MODEL_FILE.replace("input_size = (1, 3, 8, 8)", ""), [], "--input-size is needed"),
        (MODEL_FILE, ["--input-size", "1,3,10,10"], "failed in Linear '4'"),
        ("raise ImportError('no such thing')", [], "ImportError: no such thing"),
        ("x = 1", [], "does not set `model`"),
        (MODEL_FILE, ["--input-size", "1,a"], "--input-size expects"),
    ],
    ids=["no-input-size", "forward-fails", "file-raises", "no-model", "bad-size"],
)
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, content, argv, message):
    path = tmp_path / "model.py"
    path.write_text(content)
    code, out, err = _run(capsys, path, *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_missing_file_subprocess(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "convscope.cli", "summary", str(tmp_path / "none.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr
