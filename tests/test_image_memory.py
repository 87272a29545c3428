"""``convscope image`` in bounded memory: images read and pixels written in bands, big images
convolved in bands of rows (:mod:`convscope.apps.image_strips`) with the same pixels as a
whole-image run, ``--model`` sized to the budget, and the peak memory of a real run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import convscope as cs
from convscope.apps import image as image_app
from convscope.apps import image_strips
from convscope.apps.filters import filter_conv
from convscope.cli import image as image_cli
from convscope.cli import main
from convscope.io import image as image_io


def run_cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture)


def _whole_image_rgb(path: Path) -> np.ndarray:
    """What read_image returned before it converted bands: the whole image at once."""
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            scale = 1.0 if upright.mode == "F" else 65535.0
            gray = np.clip(np.asarray(upright, dtype=np.float32) / scale, 0.0, 1.0)
            rgb = np.repeat(gray[..., None], 3, axis=2)
        elif "A" in upright.mode or "a" in upright.mode or "transparency" in upright.info:
            rgba = np.asarray(upright.convert("RGBA"), dtype=np.float32) / 255.0
            rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
        else:
            rgb = np.asarray(upright.convert("RGB"), dtype=np.float32) / 255.0
    return rgb.transpose(2, 0, 1)


def _pictures(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (23, 17, 3), dtype=np.uint8)
    made = {
        "rgb.png": Image.fromarray(rgb),
        "gray.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., 1]])),
        "la.png": Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 2]])).convert("LA"),
        "sixteen.png": Image.fromarray(rng.integers(0, 65536, (23, 17), dtype=np.uint16)),
        "float.tif": Image.fromarray(rng.normal(0.5, 0.5, (23, 17)).astype(np.float32)),
        "bits.bmp": Image.fromarray(rgb[..., 0] > 128),
    }
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    made["palette.png"] = palette
    paths = {}
    for name, picture in made.items():
        paths[name] = folder / name
        picture.save(paths[name])
    rotated = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: rotate 90 degrees when shown
    Image.fromarray(rgb).save(rotated, exif=exif.tobytes(), quality=90)
    paths["rotated.jpg"] = rotated
    return paths


def test_read_image_in_bands_equals_the_whole_image_conversion(tmp_path, monkeypatch):
    monkeypatch.setattr(image_io, "READ_BLOCK_PIXELS", 40)  # bands of 2 rows
    for name, path in _pictures(tmp_path).items():
        got = image_io.read_image(path)
        expected = _whole_image_rgb(path)
        assert got.dtype == np.float32 and got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    assert image_io.read_image(tmp_path / "rotated.jpg").shape == (3, 17, 23)  # upright


def test_to_pixels_in_bands_equals_the_whole_array_formula(monkeypatch):
    monkeypatch.setattr(image_io, "READ_BLOCK_PIXELS", 50)
    values = np.random.default_rng(1).normal(0.5, 0.7, (3, 31, 19)).astype(np.float32)
    values[0, 3, 4], values[1, 5, 6], values[2, 7, 8] = np.nan, np.inf, -np.inf
    for array in (values, values[1], values[:1]):
        whole = np.asarray(array, dtype=np.float64)
        whole = whole[0] if whole.shape[0] == 1 else whole
        whole = whole.transpose(1, 2, 0) if whole.ndim == 3 else whole
        expected = np.round(np.clip(np.nan_to_num(whole, nan=0.0), 0, 1) * 255).astype(np.uint8)
        np.testing.assert_array_equal(image_io.to_pixels(array), expected)


LAYERS = [
    {"kernel_size": 3, "padding": 1},
    {"kernel_size": 4, "stride": 3, "padding": 2, "padding_mode": "reflect"},
    {"kernel_size": 3, "dilation": 2, "padding": 2, "padding_mode": "circular", "groups": 3},
    {"kernel_size": (2, 5), "padding": "same", "padding_mode": "replicate"},
    {"kernel_size": 3, "stride": 2, "padding": 0},
    {"kernel_size": 1, "padding": 3},  # output rows made of padding only
]


@pytest.mark.parametrize("options", LAYERS)
def test_bands_of_rows_equal_the_whole_layer(options):
    image = np.random.default_rng(2).random((3, 29, 23), dtype=np.float32)
    conv = image_app.random_conv(seed=4, out_channels=6, **options)
    whole = image_app.feature_maps(image, conv, activation="none")
    rows = lambda start, stop: image[:, start:stop]  # noqa: E731
    for step in (1, 4, whole.shape[1]):
        bands = [
            image_strips.conv_rows(conv, rows, (29, 23), start, min(start + step, whole.shape[1]))
            for start in range(0, whole.shape[1], step)
        ]
        np.testing.assert_allclose(np.concatenate(bands, axis=1), whole, rtol=0, atol=1e-6)
    luma = filter_conv(["sobel-x", "laplacian"], padding_mode="reflect")  # one input channel
    band = image_strips.conv_rows(luma, rows, (29, 23), 5, 9)
    expected = image_app.feature_maps(image, luma, activation="none")[:, 5:9]
    np.testing.assert_allclose(band, expected, atol=1e-6)


def test_a_layer_that_cannot_pad_the_image_is_refused_like_torch():
    conv = image_app.random_conv(kernel_size=3, padding=5, padding_mode="reflect")
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        image_strips.check_layer(conv, (4, 30))


def _photo(path: Path, size: tuple[int, int]) -> None:
    """A mostly flat RGB picture with a few shapes (compresses like a real big PNG)."""
    height, width = size
    picture = Image.new("RGB", (width, height), (200, 120, 40))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([width // 7, height // 7, width // 2, height * 5 // 7], fill=(10, 200, 90))
    draw.ellipse([width * 4 // 7, height // 14, width * 13 // 14, height * 3 // 7], fill="white")
    picture.save(path)


OPTIONS = [
    [],
    ["--activation", "minmax", "--sheet-scale", "activation"],
    ["--activation", "none", "--stride", "2", "--padding-mode", "reflect", "--out-channels", "3"],
    ["--filters", "sobel-x,laplacian", "--sheet-scale", "per-map", "--format", "bmp"],
]


@pytest.mark.parametrize("options", OPTIONS)
def test_banded_run_writes_the_pixels_of_the_whole_image_run(
    options, tmp_path, capsys, monkeypatch
):
    banded = []

    class Spy(image_strips.BandedConv):
        def __post_init__(self) -> None:
            super().__post_init__()
            banded.append(self.plan)

    monkeypatch.setattr(image_strips, "BandedConv", Spy)
    source = tmp_path / "in.png"
    _photo(source, (53, 71))
    picture = image_io.read_image(source)
    noise = np.random.default_rng(3).normal(0, 0.2, picture.shape).astype(np.float32)
    image_io.write_image(source, np.clip(picture + noise, 0, 1))  # edges and texture
    args = ["image", source, "--no-progress", *options]
    assert run_cli([*args, "-o", tmp_path / "whole"], capsys)[0] == 0
    job = image_cli.ImageJob(image_cli.build_conv(image_cli_args(options))[0])
    info = image_io.probe_image(source)
    budget = image_cli.in_memory_bytes(job, info) // 4  # too small to hold the image's maps
    with cs.workspace_budget(budget):
        code, stdout, _ = run_cli([*args, "-o", tmp_path / "banded"], capsys)
    assert code == 0 and "1 image(s)" in stdout
    assert len(banded) == 1 and banded[0].rows < 53  # the second run went in bands
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "banded").iterdir())
    for name in names:
        if "_channel_" in name:
            np.testing.assert_array_equal(
                pixels(tmp_path / "banded" / name), pixels(tmp_path / "whole" / name), name
            )


def image_cli_args(options: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    image_cli.add_parser(sub, "image")
    return parser.parse_args(["image", *options])


def test_whole_image_run_equals_the_direct_convolution(tmp_path, capsys):
    """Ordinary images take the whole-array path: the files are to_pixels of the layer's
    output through the activation, value for value (what the command always wrote)."""
    from convscope.samples import path

    assert run_cli(["image", "-o", tmp_path, "--no-progress", "--no-sheet"], capsys)[0] == 0
    maps = image_app.feature_maps(image_io.read_image(path("photo.jpg")), image_app.random_conv())
    for channel, values in enumerate(maps):
        saved = pixels(tmp_path / f"photo_channel_{channel}.png")
        np.testing.assert_array_equal(saved, image_io.to_pixels(values))


def test_banded_sheet_of_a_big_image_states_the_true_sizes_and_ranges(
    tmp_path, capsys, monkeypatch
):
    from convscope import viz

    source = tmp_path / "wide.png"
    _photo(source, (450, 900))
    figures, original = [], viz.save_figure
    monkeypatch.setattr(
        viz, "save_figure", lambda f, *a, **k: (figures.append(f), original(f, *a, **k))
    )
    with cs.workspace_budget(8 << 20):  # too small for the whole image: bands
        args = ["image", source, "-o", tmp_path, "--no-progress", "--stride", "2"]
        assert run_cli(args, capsys)[0] == 0
    (figure,) = figures
    heading = figure._suptitle.get_text()
    assert "output 225 x 450 (H x W) from input 450 x 900, stride 2" in heading
    assert "means of 2 x 2 blocks" in heading
    assert figure.axes[0].get_title().startswith("input 450 x 900 (H x W)")
    conv = image_app.random_conv(stride=2)
    raw = image_app.feature_maps(image_io.read_image(source), conv, activation="none")
    for ax, values in zip(figure.axes[1:5], raw, strict=True):
        assert ax.get_title().endswith(f"values {values.min():.3g} .. {values.max():.3g}")


def test_model_batches_follow_the_budget_and_refuse_what_cannot_fit(tmp_path, capsys):
    from convscope.apps import classify

    network = classify.load_model("fashion", None)
    assert image_cli.model_chunk(network, "fashion", "conv1_2", 8) == 8
    with cs.workspace_budget(1 << 20):  # one image needs about 0.4 MiB
        chunk = image_cli.model_chunk(network, "fashion", "conv1_2", 8)
        assert 1 <= chunk < 8
    with cs.workspace_budget(200_000):
        args = ["image", "--model", "fashion", "--layer", "conv1_2", "-o", tmp_path / "o"]
        code, _, stderr = run_cli(args, capsys)
    assert code == 2 and stderr.count("\n") == 1 and not (tmp_path / "o").exists()
    assert "over the memory budget of" in stderr and "CONVSCOPE_WORKSPACE_BYTES" in stderr


def test_an_image_bigger_than_the_free_memory_is_refused_up_front(tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.png"
    _photo(source, (300, 200))
    monkeypatch.setattr(image_strips, "available_bytes", lambda: 1 << 20)
    code, _, stderr = run_cli(["image", source, "-o", tmp_path / "out"], capsys)
    assert code == 2 and stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    assert "in.png (300 x 200, H x W) needs about" in stderr and "1.0 MiB available" in stderr
    args = ["image", source, "--model", "fashion", "--layer", "conv1_1", "-o", tmp_path / "out"]
    code, _, stderr = run_cli(args, capsys)
    assert code == 2 and "needs about" in stderr and not (tmp_path / "out").exists()
    monkeypatch.setattr(image_strips, "available_bytes", lambda: None)  # unknown: no check
    assert run_cli(["image", source, "-o", tmp_path / "out", "--no-progress"], capsys)[0] == 0


PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _peak_rss(args: list, budget: int) -> int:
    """Peak resident bytes of ``convscope ARGS`` in a fresh process (measured by a parent of
    its own, so no earlier child of the test run counts)."""
    env = {**os.environ, "CONVSCOPE_WORKSPACE_BYTES": str(budget)}
    command = [sys.executable, "-c", PEAK, sys.executable, "-m", "convscope", *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_peak_memory_of_a_big_image_stays_near_budget_plus_input(tmp_path):
    """A 4000 x 4000 PNG (the old command peaked at 2.7 GB on it) stays within the memory of a
    tiny image's run plus the decoded pixels (4 bytes each in Pillow) plus the budget."""
    budget = 64 << 20
    tiny, big = tmp_path / "tiny.png", tmp_path / "big.png"
    _photo(tiny, (40, 40))
    _photo(big, (4000, 4000))
    base = _peak_rss(["image", tiny, "-o", tmp_path / "t", "--no-progress"], budget)
    peak = _peak_rss(["image", big, "-o", tmp_path / "b", "--no-progress"], budget)
    bound = base + 4 * 4000 * 4000 + budget + (32 << 20)  # + PNG encoder and figure
    assert peak < bound, textwrap.dedent(f"peak {peak >> 20} MiB, bound {bound >> 20} MiB")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        *(f"big_channel_{i}.png" for i in range(4)),
        "big_sheet.png",
    ]


class _Rows:
    """An in-memory image with the reading interface of ``io.image.ImageRows``."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels, (_, self.height, self.width) = pixels, pixels.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.pixels[:, start:stop]


@pytest.mark.parametrize("activation", image_app.ACTIVATIONS)
@pytest.mark.parametrize("groups", [1, 3])
def test_pictures_channel_block_by_channel_block(activation, groups):
    """A budget for one channel's picture at a time: every block of channels is computed in
    its own pass (only its channels when the layer has one group) and gives the pixels of
    the whole output; the sheet's means and ranges come from the first pass."""
    image = np.random.default_rng(5).random((3, 40, 30), dtype=np.float32)
    conv = image_app.random_conv(seed=2, out_channels=6, kernel_size=5, padding=2, groups=groups)
    whole = image_app.feature_maps(image, conv, activation="none")
    run = image_strips.BandedConv(conv, _Rows(image), activation, 4 * 40 * 30 * 2, True)
    assert run.plan.channels == 2 and run.plan.rows < 40
    got = dict(run.pictures())
    assert sorted(got) == list(range(6))
    for channel, values in enumerate(image_app.activate(whole, activation)):
        np.testing.assert_array_equal(got[channel], image_io.to_pixels(values))
    assert run.sheet.factor == run.factor > 1  # coarser means: 6 maps in a small budget
    means = image_strips.block_means
    np.testing.assert_allclose(run.sheet.raw, means(whole, run.factor), atol=1e-6)
    low, high = whole.min(axis=(1, 2)), whole.max(axis=(1, 2))
    np.testing.assert_allclose(run.sheet.ranges, np.stack([low, high], axis=1), atol=1e-6)
    activated = image_app.activate(whole, activation)
    np.testing.assert_allclose(run.sheet.activated, means(activated, run.factor), atol=1e-6)
    assert run.sheet.mean == pytest.approx(float(activated.mean()), abs=1e-6)
    assert run.sheet.std == pytest.approx(float(activated.std()), abs=1e-6)
