"""``convscope kernels`` end to end, the kernel grid, the filter gallery and the contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import viz
from convscope.apps import kernels as kernels_app
from convscope.cli import kernels as kernels_cli
from convscope.cli import main
from convscope.io import save


def run_cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size


def grid_image(figure) -> np.ndarray:
    """The canvas array drawn by ``kernel_grid`` (NaN in the gaps)."""
    return np.ma.filled(figure.axes[0].images[0].get_array(), np.nan)


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, cs.nn.Module]:
    cs.manual_seed(1)
    model = cs.nn.Sequential(
        cs.nn.Conv2d(1, 6, 3),
        cs.nn.BatchNorm2d(6),
        cs.nn.ReLU(),
        cs.nn.Conv2d(6, 4, 5),
        cs.nn.Flatten(),
        cs.nn.Linear(4, 2),
    )
    path = tmp_path / "model.cs"
    save({"state_dict": model.state_dict(), "meta": {"epochs": 0}}, path)
    return path, model


# --- the command -------------------------------------------------------------------------------


def test_default_draws_a_fresh_layer_and_the_classic_filters(tmp_path, capsys):
    code, stdout, _ = run_cli(["kernels", "-o", tmp_path], capsys)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kernels_classic.png",
        "kernels_random.png",
    ]
    assert "Conv2d(3, 4, kernel_size=(3, 3)" in stdout and "weight (4, 3, 3, 3)" in stdout
    width, height = png_size(tmp_path / "kernels_classic.png")
    assert width > height  # 3 rows of 4 panels


def test_fresh_layer_options(tmp_path, capsys):
    args = ["kernels", "-o", tmp_path, "--in-channels", "4", "--out-channels", "2"]
    code, stdout, _ = run_cli(
        [*args, "--kernel-size", "5", "--groups", "2", "--filters", "box"], capsys
    )
    assert code == 0 and "weight (2, 2, 5, 5)" in stdout and "classic filters box" in stdout


def test_every_conv_layer_of_a_checkpoint(tmp_path, capsys, checkpoint):
    path, _ = checkpoint
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["kernels", path, "-o", out], capsys)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["kernels_0.png", "kernels_3.png"]
    assert "0: weight (6, 1, 3, 3)" in stdout and "3: weight (4, 6, 5, 5)" in stdout

    code, stdout, _ = run_cli(
        ["kernels", path, "--layer", "3.weight", "-o", tmp_path / "one"], capsys
    )
    assert code == 0 and [p.name for p in (tmp_path / "one").iterdir()] == ["kernels_3.png"]


def test_pytorch_checkpoint(tmp_path, capsys, reference):
    torch = reference
    net = torch.nn.Sequential()
    net.add_module("features", torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)))
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    code, stdout, _ = run_cli(["kernels", path, "--layer", "features.0", "-o", tmp_path], capsys)
    assert code == 0 and "features.0: weight (8, 3, 3, 3)" in stdout
    png_size(tmp_path / "kernels_features.0.png")
    layer = kernels_app.select_layer(kernels_app.conv_layers(cs.load_torch(path)), "features.0")
    np.testing.assert_array_equal(layer.weight, net.features[0].weight.detach().numpy())


def test_safetensors_checkpoint(tmp_path, capsys):
    from convscope.io import save_safetensors

    conv = cs.nn.Conv1d(2, 3, 7)
    path = tmp_path / "conv.safetensors"
    save_safetensors({"encoder.weight": conv.weight, "encoder.bias": conv.bias}, path)
    code, stdout, _ = run_cli(["kernels", path, "-o", tmp_path / "out"], capsys)
    assert code == 0 and "encoder: weight (3, 2, 7)" in stdout
    png_size(tmp_path / "out" / "kernels_encoder.png")


def test_demo(tmp_path, capsys):
    kernels_cli.demo(tmp_path)
    assert "kernels_random.png" in capsys.readouterr().out
    png_size(tmp_path / "kernels_random.png")
    png_size(tmp_path / "kernels_classic.png")


BAD = {
    "missing checkpoint": (["{tmp}/none.cs"], "no such checkpoint"),
    "corrupt checkpoint": (["{tmp}/bad.cs"], "neither a convscope checkpoint nor a torch.save"),
    "unknown layer": (["{ckpt}", "--layer", "9"], "no conv layer '9' in the checkpoint (available"),
    "not a conv layer": (["{ckpt}", "--layer", "1"], "available: '0', '3'"),
    "layer without checkpoint": (["--layer", "0"], "give the CHECKPOINT too"),
    "fresh options with checkpoint": (["{ckpt}", "--out-channels", "8"], "--out-channels"),
    "bad kernel size": (["--kernel-size", "three"], "--kernel-size expects an integer"),
    "bad groups": (["--groups", "2"], "in_channels must be divisible by groups"),
    "unknown filter": (["--filters", "sobel"], "unknown filter 'sobel'"),
    "zero max channels": (["--max-channels", "0"], "--max-channels must be at least 1"),
    "bad int": (["--in-channels", "many"], "invalid int value"),
    "output is a file": (["-o", "{ckpt}"], "is not a folder"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input(case, tmp_path, capsys, checkpoint):
    path, _ = checkpoint
    (tmp_path / "bad.cs").write_bytes(b"PK\x03\x04garbage")
    before = path.read_bytes()
    template, expected = BAD[case]
    args = [a.format(tmp=tmp_path, ckpt=path) for a in template]
    out = tmp_path / "out"
    code, _, stderr = run_cli(["kernels", *args, *([] if "-o" in args else ["-o", out])], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert expected in stderr, stderr
    assert path.read_bytes() == before
    assert not out.exists() or list(out.iterdir()) == []


# --- the pictures ------------------------------------------------------------------------------


def test_kernel_grid_layout_and_shared_symmetric_scale():
    weight = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20
    figure = viz.kernel_grid(weight, title="test")
    ax, bar = figure.axes
    image = ax.images[0]
    assert image.get_clim() == (-33.0, 33.0)  # symmetric around 0, shared by every cell
    assert bar.get_ylabel().startswith("weight value")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input channel", "output channel")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    canvas = grid_image(figure)
    scale = 4  # 3x3 kernels drawn 12 pixels wide
    np.testing.assert_array_equal(canvas[: 3 * scale : scale, : 3 * scale : scale], weight[0, 0])
    second_row = 3 * scale + 1
    np.testing.assert_array_equal(
        canvas[second_row : second_row + 3 * scale : scale, 2 * (3 * scale + 1) :: scale],
        weight[1, 2],
    )
    assert np.isnan(canvas[3 * scale, 0])  # a gap between rows
    assert [t.get_text() for t in ax.texts][:3] == ["\u221220", "\u221219", "\u221218"]


def test_kernel_grid_wraps_a_single_input_channel_and_caps_channels():
    figure = viz.kernel_grid(np.ones((40, 1, 3, 3)), max_channels=9)
    assert "first 9 of 40 output channels" in figure._suptitle.get_text()
    labels = [t.get_text() for t in figure.axes[0].texts if t.get_text().startswith("output")]
    assert labels == [f"output {i}" for i in range(9)]  # a 3x3 grid of kernels
    assert grid_image(figure).shape[1] < 4 * grid_image(figure).shape[0]


def test_kernel_grid_other_dimensions():
    strip = viz.kernel_grid(np.ones((2, 2, 5)))  # Conv1d
    assert grid_image(strip).shape[0] < grid_image(strip).shape[1]
    cube = viz.kernel_grid(np.zeros((2, 1, 3, 3, 3)))  # Conv3d: middle depth slice
    assert "depth slice 1 of 3" in cube._suptitle.get_text()
    with pytest.raises(ValueError, match="3 to 5 dimensions"):
        viz.kernel_grid(np.zeros((3, 3)))


def test_filter_gallery_and_contact_sheet():
    gallery = viz.filter_gallery(
        {"a": np.eye(3), "b": -np.eye(3) * 2}, descriptions={"a": "identity-ish"}
    )
    assert [ax.get_title() for ax in gallery.axes] == ["a", "b"]
    assert gallery.axes[0].get_xlabel() == "identity-ish"
    assert gallery.axes[1].images[0].get_clim() == (-2.0, 2.0)

    picture, maps = (
        np.random.default_rng(0).random((3, 10, 12)),
        np.random.default_rng(1).random((3, 10, 12)),
    )
    sheet = viz.contact_sheet(picture, maps, titles=["x", "y", "z"], title="t")
    titles = [ax.get_title() for ax in sheet.axes if ax.get_title()]
    assert titles[0].startswith("input") and titles[1].startswith("channel 0: x")
    assert any(ax.get_ylabel() == "feature value" for ax in sheet.axes)  # the colour bar
    raw = viz.contact_sheet(picture, maps * 10 - 5, scale="per-map")  # each map its own range
    assert not any(ax.get_ylabel() == "feature value" for ax in raw.axes)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        viz.contact_sheet(picture, maps[0])


def test_grid_helpers():
    assert viz.grid_shape(1) == (1, 1) and viz.grid_shape(10) == (3, 4)
    tiled = viz.tile(np.ones((3, 2, 2)), gap=1, fill=0.0)
    assert tiled.shape == (5, 5) and tiled[2].sum() == 0 and tiled[3:, 3:].sum() == 0
    assert viz.tile(np.ones((2, 3, 4, 4))).shape == (3, 4, 10)
    np.testing.assert_allclose(viz.to_unit_range(np.array([0.2, 0.4])), [0.2, 0.4])
    np.testing.assert_allclose(viz.to_unit_range(np.array([0.2, 0.4]), keep_unit=False), [0, 1])
    assert viz.to_unit_range(np.full(3, 7.0)).tolist() == [0.5] * 3


def test_conv_layers_of_nested_checkpoints(checkpoint):
    path, model = checkpoint
    layers = kernels_app.conv_layers(kernels_app.load_checkpoint(path))
    assert list(layers) == ["0", "3"]
    np.testing.assert_array_equal(layers["3"].weight, model[3].weight.numpy())
    np.testing.assert_array_equal(layers["3"].bias, model[3].bias.numpy())
    with pytest.raises(ValueError, match="no convolution weights"):
        kernels_app.select_layer({})
