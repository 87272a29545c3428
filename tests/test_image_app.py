"""``convscope image`` end to end, its Python API, and every kind of bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope.apps import filters as filters_app
from convscope.apps import image as image_app
from convscope.cli import image as image_cli
from convscope.cli import main
from convscope.io import image as image_io
from convscope.io import save

H, W = 12, 16  # small generated images keep the tests fast


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``convscope ARGS`` (argparse errors exit instead)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture).astype(np.int64)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def random_rgb(path: Path, seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    data = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(data).save(path)
    return data


def vertical_edge(dark_left: bool = True) -> np.ndarray:
    """(3, H, W) in [0, 1]: black left half, white right half (or the reverse)."""
    image = np.zeros((3, H, W), dtype=np.float32)
    image[:, :, W // 2 :] = 1.0
    return image if dark_left else 1.0 - image


# --- the command on the bundled photo and on generated files -------------------------------


def test_default_run_on_the_bundled_photo(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["image", "-o", out, "--no-progress"], capsys)
    assert code == 0
    names = [f"photo_channel_{i}.png" for i in range(4)] + ["photo_sheet.png"]
    assert files_in(out) == sorted(names)
    with Image.open(image_cli.collect_inputs([])[0]) as photo:
        size = photo.size
    for name in names[:4]:
        with Image.open(out / name) as channel:
            assert channel.mode == "L" and channel.size == size
    with Image.open(out / "photo_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.size[0] > sheet.size[1]
    assert "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in stdout


def test_default_layer_equals_torch_conv2d_then_sigmoid(tmp_path, capsys, reference):
    torch = reference
    source = tmp_path / "in.png"
    random_rgb(source, seed=1)
    out = tmp_path / "out"
    assert run_cli(["image", source, "-o", out, "--seed", "3", "--no-progress"], capsys)[0] == 0

    conv = image_app.random_conv(seed=3)  # what the command built
    x = torch.from_numpy(image_io.read_image(source)[None])
    expected = torch.sigmoid(
        torch.nn.functional.conv2d(
            x, torch.from_numpy(conv.weight.numpy()), torch.from_numpy(conv.bias.numpy()), 1, 1
        )
    )[0].numpy()
    np.testing.assert_allclose(
        image_app.feature_maps(image_io.read_image(source), conv), expected, atol=1e-6
    )
    for i in range(4):
        saved = pixels(out / f"in_channel_{i}.png")
        assert saved.shape == (H, W)
        assert np.abs(saved - np.round(expected[i] * 255)).max() <= 1


def test_sobel_responds_to_a_vertical_edge_with_the_right_sign():
    conv = filters_app.filter_conv(["sobel-x", "sobel-y"], padding_mode="replicate")
    rising = image_app.feature_maps(vertical_edge(True), conv, activation="none")
    falling = image_app.feature_maps(vertical_edge(False), conv, activation="none")
    edge = [W // 2 - 1, W // 2]
    flat = [c for c in range(W) if c not in edge]
    np.testing.assert_allclose(rising[0][:, edge], 4.0, atol=1e-5)  # dark -> bright: positive
    np.testing.assert_allclose(falling[0][:, edge], -4.0, atol=1e-5)  # bright -> dark: negative
    np.testing.assert_allclose(rising[0][:, flat], 0.0, atol=1e-5)
    np.testing.assert_allclose(rising[1], 0.0, atol=1e-5)  # sobel-y: no horizontal edge


def test_filters_command_saves_one_channel_per_filter(tmp_path, capsys):
    source = tmp_path / "edge.png"
    Image.fromarray((vertical_edge()[0] * 255).astype(np.uint8)).save(source)  # grayscale
    out = tmp_path / "out"
    args = ["image", source, "-o", out, "--filters", "sobel-x,laplacian,gaussian"]
    code, stdout, _ = run_cli([*args, "--padding-mode", "replicate", "--no-progress"], capsys)
    assert code == 0 and "classic filters on the luminance" in stdout
    assert files_in(out) == [f"edge_channel_{i}.png" for i in (0, 1, 2)] + ["edge_sheet.png"]
    sobel = pixels(out / "edge_channel_0.png")
    assert (sobel[:, W // 2 - 1 : W // 2 + 1] == round(255 / (1 + np.exp(-4)))).all()
    assert (sobel[:, :4] == 128).all() and (sobel[:, -4:] == 128).all()  # sigmoid(0)


def test_filters_on_each_colour_channel():
    image = np.zeros((3, H, W), dtype=np.float32)
    image[0, :, W // 2 :] = 1.0  # an edge in red only
    conv = filters_app.filter_conv(["sobel-x", "box"], mode="each", padding_mode="replicate")
    assert (conv.groups, conv.out_channels) == (3, 6)
    maps = image_app.feature_maps(image, conv, activation="none")
    assert np.abs(maps[0]).max() == pytest.approx(4.0)  # sobel-x (R)
    assert np.abs(maps[2:]).max() == 0.0  # G and B are flat and black
    assert filters_app.channel_names(["sobel-x", "box"], mode="each")[2] == "sobel-x (G)"


def test_luminance_filters_weigh_the_colours_by_bt601():
    weight, groups = filters_app.filter_weight(["identity"])
    assert groups == 1
    np.testing.assert_allclose(weight[0, :, 1, 1], filters_app.LUMA)
    image = np.random.default_rng(0).random((3, H, W), dtype=np.float32)
    maps = image_app.feature_maps(image, filters_app.filter_conv(["identity"]), activation="none")
    np.testing.assert_allclose(maps, image_app.luminance(image), atol=1e-6)


def test_folder_in_batches_of_mixed_sizes(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        random_rgb(folder / f"a{i}.png", seed=i)
    random_rgb(folder / "b.bmp", seed=5, size=(8, 10))
    random_rgb(folder / "a0.tif", seed=6, size=(8, 10))  # same stem as a0.png
    (folder / "notes.txt").write_text("not an image, skipped by suffix")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "out"
    args = ["image", folder, "-o", out, "--batch-size", "2", "--out-channels", "2"]
    code, stdout, _ = run_cli([*args, "--format", "jpg", "--no-progress"], capsys)
    assert code == 0 and "5 image(s), 15 files" in stdout
    stems = ["a0", "a0_2", "a1", "a2", "b"]
    assert files_in(out) == sorted(
        [f"{s}_channel_{i}.jpg" for s in stems for i in (0, 1)] + [f"{s}_sheet.png" for s in stems]
    )
    with Image.open(out / "b_channel_0.jpg") as small:
        assert small.size == (10, 8) and small.format == "JPEG"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_progress_bar_and_no_sheet(tmp_path, capsys):
    for i in range(2):
        random_rgb(tmp_path / f"p{i}.png", seed=i)
    args = ["image", tmp_path / "p0.png", tmp_path / "p1.png", "-o", tmp_path / "o"]
    code, _, stderr = run_cli([*args, "--out-channels", "1", "--no-sheet"], capsys)
    assert code == 0 and "/2 [" in stderr and "image/s" in stderr  # tqdm's bar
    assert files_in(tmp_path / "o") == ["p0_channel_0.png", "p1_channel_0.png"]


def test_checkpoint_layer_in_convscope_format(tmp_path, capsys):
    cs.manual_seed(5)
    model = cs.nn.Sequential(cs.nn.Conv2d(1, 2, 3), cs.nn.ReLU(), cs.nn.Conv2d(2, 5, 3))
    rgb = cs.nn.Conv2d(3, 5, 3)
    state = {**model.state_dict(), "rgb.weight": rgb.weight, "rgb.bias": rgb.bias}
    ckpt = tmp_path / "model.cs"
    save({"state_dict": state, "meta": {"epochs": 1}}, ckpt)
    source = tmp_path / "in.png"
    random_rgb(source)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["image", source, "-o", out, "--checkpoint", ckpt], capsys)
    assert code == 0 and "layer '0'" in stdout  # the first conv layer; 1 input channel
    assert len([n for n in files_in(out) if "_channel_" in n]) == 2
    luma = image_app.luminance(image_io.read_image(source)[None])
    with cs.no_grad():  # a state dict has no geometry: padding 1 is the option's default
        expected = cs.nn.functional.conv2d(
            cs.from_numpy(luma), model[0].weight, model[0].bias, padding=1
        )
    expected = expected.sigmoid().numpy()[0]
    assert expected.shape == (2, H, W)
    assert np.abs(pixels(out / "in_channel_1.png") - np.round(expected[1] * 255)).max() <= 1

    args = ["image", source, "-o", out, "--checkpoint", ckpt, "--layer", "rgb", "--activation"]
    assert run_cli([*args, "minmax", "--padding", "0"], capsys)[0] == 0
    maps = [pixels(out / f"in_channel_{i}.png") for i in range(5)]
    assert all(m.shape == (H - 2, W - 2) and m.min() == 0 and m.max() == 255 for m in maps)

    code, _, stderr = run_cli([*args[:-1], "--layer", "2"], capsys)
    assert code == 2 and "the layer expects 2 input channels" in stderr


def test_checkpoint_from_pytorch(tmp_path, capsys, reference):
    torch = reference
    layer = torch.nn.Conv2d(3, 3, 3, padding=1)
    ckpt = tmp_path / "model.pt"
    torch.save({"features.0.weight": layer.weight.data, "features.0.bias": layer.bias.data}, ckpt)
    source = tmp_path / "in.png"
    random_rgb(source, seed=2)
    out = tmp_path / "out"
    args = ["image", source, "-o", out, "--checkpoint", ckpt, "--layer", "features.0"]
    assert run_cli(args, capsys)[0] == 0
    with torch.no_grad():
        expected = torch.sigmoid(layer(torch.from_numpy(image_io.read_image(source)[None])))[0]
    for i in range(3):
        got = pixels(out / f"in_channel_{i}.png")
        assert np.abs(got - np.round(expected[i].numpy() * 255)).max() <= 1


def test_conv_options_reach_the_layer(tmp_path, capsys):
    source = tmp_path / "in.png"
    random_rgb(source)
    out = tmp_path / "out"
    args = ["image", source, "-o", out, "--out-channels", "6", "--kernel-size", "3,5"]
    args += ["--stride", "2", "--padding", "0", "--dilation", "1", "--groups", "3", "--no-bias"]
    code, stdout, _ = run_cli([*args, "--padding-mode", "reflect"], capsys)
    assert code == 0
    assert "Conv2d(3, 6, kernel_size=(3, 5), stride=(2, 2), groups=3, bias=False" in stdout
    with Image.open(out / "in_channel_5.png") as channel:
        assert channel.size == ((W - 5) // 2 + 1, (H - 3) // 2 + 1)


def test_activation_none_clips_when_saving(tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray((vertical_edge()[0] * 255).astype(np.uint8)).save(source)
    out = tmp_path / "out"
    args = ["image", source, "-o", out, "--filters", "sobel-x", "--activation", "none"]
    assert run_cli([*args, "--padding-mode", "replicate"], capsys)[0] == 0
    saved = pixels(out / "in_channel_0.png")
    assert saved.max() == 255 and saved[:, :4].max() == 0  # 4 -> clipped to 1, flat 0 -> 0


# --- reading images --------------------------------------------------------------------------


def test_read_image_modes(tmp_path):
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_allclose(
        image_io.read_image(tmp_path / "gray.png"), np.stack([gray / 255] * 3), atol=1e-6
    )

    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, : W // 2, 3] = 0  # ... transparent on the left, opaque on the right
    rgba[:, W // 2 :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = image_io.read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(image[:, :, : W // 2], 1.0)  # onto white
    np.testing.assert_allclose(image[:, 0, -1], [1.0, 0.0, 0.0])

    deep = (np.arange(H * W).reshape(H, W) * 300).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit grayscale
    np.testing.assert_allclose(
        image_io.read_image(tmp_path / "deep.png")[1], deep / 65535, atol=1e-6
    )

    rgb = random_rgb(tmp_path / "rgb.bmp")
    Image.fromarray(rgb).save(tmp_path / "rgb.tiff")
    for name in ("rgb.bmp", "rgb.tiff"):
        np.testing.assert_allclose(
            image_io.read_image(tmp_path / name), rgb.transpose(2, 0, 1) / 255, atol=1e-6
        )
    assert image_io.probe_image(tmp_path / "rgb.tiff") == ("TIFF", H, W)


def test_write_image_round_trip(tmp_path):
    values = np.random.default_rng(0).random((3, H, W))
    image_io.write_image(tmp_path / "x.png", values)
    assert np.abs(image_io.read_image(tmp_path / "x.png") - values).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="cannot tell the image format"):
        image_io.write_image(tmp_path / "x.gif", values)


def test_api_helpers():
    assert image_app.activate(np.zeros((1, 2, 2)), "sigmoid").tolist() == [[[0.5, 0.5], [0.5, 0.5]]]
    assert image_app.activate(np.full((1, 2, 2), 3.0), "minmax").max() == 0.0
    with pytest.raises(ValueError, match="unknown activation"):
        image_app.activate(np.zeros((1, 1, 1)), "tanh")
    assert image_app.output_size(cs.nn.Conv2d(3, 1, 5, padding=2, stride=3), 10, 7) == (4, 3)
    with pytest.raises(ValueError, match="expects 16 input channels"):
        image_app.feature_maps(np.zeros((3, 4, 4)), cs.nn.Conv2d(16, 1, 1))
    with pytest.raises(ValueError, match="unknown filter 'blur'"):
        filters_app.parse_filters("sobel-x,blur")
    assert filters_app.parse_filters("all") == list(filters_app.FILTERS)


def test_demo_writes_the_seed_and_filter_sheets(tmp_path, capsys):
    image_cli.demo(tmp_path)
    assert "photo_sheet.png" in capsys.readouterr().out
    assert len(files_in(tmp_path / "seed001")) == 5
    assert len(files_in(tmp_path / "filters")) == len(image_cli.DEMO_FILTERS) + 1


# --- bad input: one line on stderr, exit code 2, inputs untouched, no partial outputs -----------


def png_header(width: int, height: int) -> bytes:
    """A small PNG file whose header claims ``width x height`` (the pixels never come)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


def make_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    good = folder / "good.png"
    random_rgb(good)
    paths = {"good": good}
    paths["corrupt"] = folder / "corrupt.png"
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    paths["text"] = folder / "notes.jpg"
    paths["text"].write_text("this is not a JPEG\n")
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(good.read_bytes()[:-60])
    paths["gif"] = folder / "anim.gif"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(paths["gif"])
    paths["huge"] = folder / "huge.png"
    paths["huge"].write_bytes(png_header(20_000, 20_000))
    paths["ckpt_bad"] = folder / "bad.cs"
    paths["ckpt_bad"].write_bytes(b"PK\x03\x04 not really a zip")
    paths["ckpt"] = folder / "model.cs"
    save(cs.nn.Sequential(cs.nn.Conv2d(3, 2, 3)).state_dict(), paths["ckpt"])
    paths["plain_file"] = folder / "plain_file"
    paths["plain_file"].write_text("a file where a folder should be")
    return paths


BAD_CASES = {
    "missing path": (["{folder}/nope.png"], "no such file or folder"),
    "corrupt file": (["{corrupt}"], "corrupt.png: not an image"),
    "text named .jpg": (["{text}"], "notes.jpg: not an image"),
    "truncated file": (["{truncated}"], "truncated.png: corrupt or truncated"),
    "unsupported format": (["{gif}"], "GIF images are not supported"),
    "huge image": (["{huge}"], "image too large"),
    "over --max-pixels": (["{good}", "--max-pixels", "100"], "image too large"),
    "folder without images": (["{folder}/empty"], "no JPEG, PNG, BMP or TIFF images"),
    "bad kernel size": (["{good}", "--kernel-size", "abc"], "--kernel-size expects an integer"),
    "kernel larger than image": (["{good}", "--kernel-size", "40"], "Kernel size can't be greater"),
    "groups not dividing": (["{good}", "--groups", "2"], "in_channels must be divisible by groups"),
    "bad out-channels": (["{good}", "--out-channels", "x"], "invalid int value"),
    "zero out-channels": (["{good}", "--out-channels", "0"], "--out-channels must be in 1..4096"),
    "unknown filter": (["{good}", "--filters", "sobel-z"], "unknown filter 'sobel-z'"),
    "filters + out-channels": (
        ["{good}", "--filters", "box", "--out-channels", "5"],
        "leave them out",
    ),
    "bad filter input": (["{good}", "--filters", "box", "--filter-input", "red"], "--filter-input"),
    "unknown activation": (["{good}", "--activation", "tanh"], "--activation must be one of"),
    "unknown format": (["{good}", "--format", "gif"], "--format must be one of"),
    "zero batch size": (["{good}", "--batch-size", "0"], "--batch-size must be at least 1"),
    "layer without checkpoint": (["{good}", "--layer", "0"], "give --checkpoint too"),
    "missing checkpoint": (["{good}", "--checkpoint", "{folder}/none.cs"], "no such checkpoint"),
    "corrupt checkpoint": (["{good}", "--checkpoint", "{ckpt_bad}"], "neither a convscope"),
    "unknown layer": (["{good}", "--checkpoint", "{ckpt}", "--layer", "3"], "available: '0'"),
    "output is a file": (["{good}", "-o", "{plain_file}"], "is not a folder"),
    "output under a file": (["{good}", "-o", "{plain_file}/sub"], "cannot create output folder"),
}


@pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    paths = make_inputs(tmp_path / "in")
    (tmp_path / "in" / "empty").mkdir()
    before = {p: p.read_bytes() for p in paths.values()}
    template, expected = BAD_CASES[case]
    args = [a.format(folder=tmp_path / "in", **paths) for a in template]
    out = tmp_path / "out"
    if "-o" not in args:
        args += ["-o", str(out)]
    code, _, stderr = run_cli(["image", *args, "--no-progress"], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr and expected in stderr
    assert stderr.startswith("convscope image: error: ")
    assert {p: p.read_bytes() for p in paths.values()} == before
    assert files_in(out) == []  # no output at all, let alone half-written files


def test_a_corrupt_image_in_a_folder_is_skipped_and_the_rest_processed(tmp_path, capsys):
    """Issue 13, item 4 (the batch used to stop with exit 2); tests/test_folder_batch.py has
    the other bad-file cases."""
    paths = make_inputs(tmp_path / "in")
    for name in ("text", "gif", "huge", "truncated"):
        paths[name].unlink()
    out = tmp_path / "out"
    code, _, stderr = run_cli(["image", tmp_path / "in", "-o", out], capsys)
    assert code == 1 and stderr.count("\n") == 1 and "corrupt.png: not an image" in stderr
    assert files_in(out) == sorted([f"good_channel_{i}.png" for i in range(4)] + ["good_sheet.png"])


def test_outputs_never_overwrite_inputs(tmp_path, capsys):
    source = tmp_path / "x.png"
    random_rgb(source)
    victim = tmp_path / "x_channel_0.png"
    random_rgb(victim, seed=9)
    before = victim.read_bytes()
    code, _, stderr = run_cli(["image", source, victim, "-o", tmp_path], capsys)
    assert code == 2 and "would overwrite an input" in stderr
    assert victim.read_bytes() == before


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root can write anywhere",
)
def test_unwritable_output_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, stderr = run_cli(["image", "-o", locked], capsys)
    finally:
        locked.chmod(0o700)
    assert code == 2 and "not writable" in stderr
    assert files_in(locked) == []
