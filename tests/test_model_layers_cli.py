"""convscope image / kernels with --model --weights --layer: one layer of a torchvision network
(its feature maps on a photo, its filters), checked against torch, and one-line errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from convscope import samples
from convscope.apps import classify, imagenet
from convscope.apps import image as image_app
from convscope.cli import main
from convscope.io.image import to_pixels
from convscope.viz.kernels import colour_filters

torch = pytest.importorskip("torch")
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)
torchvision = pytest.importorskip("torchvision")
PHOTO = samples.path("photo.jpg")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- kernels ---------------------------------------------------------------------------


def test_first_layer_as_colour_filters(weights, tmp_path, capsys):
    path, model = weights
    out = tmp_path / "k"
    argv = ["kernels", "--model", "resnet18", "--weights", str(path), "--layer", "conv1"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "64 colour filters" in capsys.readouterr().out
    with Image.open(out / "kernels_resnet18.conv1.png") as image:
        assert image.mode == "RGB"
        picture = np.asarray(image)
    weight = model.conv1.weight.detach().numpy()
    np.testing.assert_array_equal(picture, colour_filters(weight))
    zoom, gap = 56 // 7, 2  # 7x7 filters enlarged 8 times, 8 per row
    assert picture.shape == (8 * (56 + gap) + gap, 8 * (56 + gap) + gap, 3)
    for index in (0, 13):
        filt = weight[index].transpose(1, 2, 0)  # (kh, kw, RGB), scaled jointly to 0..255
        expected = np.rint((filt - filt.min()) / (filt.max() - filt.min()) * 255)
        r, c = divmod(index, 8)
        top, left = gap + r * (56 + gap), gap + c * (56 + gap)
        tile = picture[top : top + 56, left : left + 56]
        np.testing.assert_array_equal(tile[::zoom, ::zoom], expected)
        np.testing.assert_array_equal(tile, tile[::zoom, ::zoom].repeat(zoom, 0).repeat(zoom, 1))

    assert main([*argv, "-o", str(out), "--max-channels", "8"]) == 0  # the first 8 filters only
    assert np.asarray(Image.open(out / "kernels_resnet18.conv1.png")).shape[0] == 56 + 2 * gap


def test_inner_layer_grid_and_errors(weights, tmp_path, capsys):
    path, _ = weights
    out = tmp_path / "k"
    argv = ["kernels", "--model", "resnet18", "--weights", str(path), "-o", str(out)]
    assert main([*argv, "--layer", "layer1.0.conv1", "--max-channels", "4"]) == 0
    with Image.open(out / "kernels_resnet18.layer1.0.conv1.png") as image:
        assert image.size[0] > 100  # the per-channel grid figure
    assert "first 4" not in capsys.readouterr().err
    for extra, text in [
        (["--layer", "bn1"], "is a BatchNorm2d, not a convolution"),
        (["--layer", "layer1.0.conv"], "did you mean layer1.0.conv1"),
        (["--layer", "nope"], "convolution layers include conv1, layer1.0.conv1"),
        ([], "needs --layer; resnet18's conv layers: conv1"),
        (["--layer", "conv1", "--seed", "3"], "--seed"),
        (["--layer", "conv1", str(path)], "not both"),
    ]:
        assert text in one_line_error([*argv, *extra], capsys)
    argv[2] = "mobilenet_v2"
    assert "do not fit mobilenet_v2" in one_line_error([*argv, "--layer", "x"], capsys)
    assert not out.joinpath("kernels_mobilenet_v2.x.png").exists()


# --- image ----------------------------------------------------------------------------


def test_layer_maps_equal_torchs(weights):
    """The library path the command takes: our network, a forward hook on the layer."""
    path, model = weights
    ours = classify.load_model("resnet18", path).model
    batch = imagenet.preprocess([PHOTO, PHOTO])
    batch[1] = batch[1, :, ::-1]  # a second, different image
    caught = {}
    for name in ("layer1.0.conv1", "layer2.0.downsample.1", "layer3"):
        module = model.get_submodule(name)
        handle = module.register_forward_hook(lambda m, a, o: caught.update(o=o.clone()))
        with torch.no_grad():
            model(torch.from_numpy(batch.copy()))
        handle.remove()
        reference = caught["o"].numpy()
        maps = image_app.model_feature_maps(ours, name, batch)
        assert maps.shape == reference.shape and maps.dtype == np.float32
        np.testing.assert_allclose(maps, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_image_model_layer_writes_the_maps(weights, tmp_path, capsys):
    path, _ = weights
    out = tmp_path / "maps"
    argv = ["image", str(PHOTO), "--model", "resnet18", "--weights", str(path)]
    assert main([*argv, "--layer", "layer2.0.conv1", "-o", str(out), "--no-sheet"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 128 and "photo_resnet18.layer2.0.conv1_channel_127.png" in names
    network = classify.load_model("resnet18", path)
    maps = image_app.model_feature_maps(
        network.model, "layer2.0.conv1", imagenet.preprocess([PHOTO])
    )
    shown = image_app.activate(maps[0], "minmax")  # --model's default: each map to 0..1
    for channel in (0, 76):
        with Image.open(out / f"photo_resnet18.layer2.0.conv1_channel_{channel}.png") as image:
            saved = np.asarray(image.convert("L")).astype(int)
        assert np.abs(saved - to_pixels(shown[channel]).astype(int)).max() <= 1

    sheet = ["--layer", "conv1", "-o", str(out), "--format", "jpg", "--activation", "sigmoid"]
    assert main([*argv, *sheet]) == 0
    assert (out / "photo_resnet18.conv1_sheet.png").exists()
    assert (out / "photo_resnet18.conv1_channel_63.jpg").exists()
    assert "(64, 112, 112)" in capsys.readouterr().out


def test_image_model_errors(weights, tmp_path, capsys):
    path, _ = weights
    out = tmp_path / "maps"
    argv = ["image", str(PHOTO), "--model", "resnet18", "--weights", str(path), "-o", str(out)]
    for extra, text in [
        (["--layer", "nope"], "resnet18 has no layer 'nope'; layers include conv1, bn1"),
        (["--layer", "layer1.0.bn"], "did you mean layer1.0.bn1"),
        (["--layer", "fc"], "not (C, H, W) feature maps"),
        ([], "--model needs --layer"),
        (["--layer", "conv1", "--stride", "2"], "--stride"),
        (["--layer", "conv1", "--filters", "sobel-x"], "--model replaces"),
    ]:
        assert text in one_line_error([*argv, *extra], capsys)
    no_weights = ["image", "--model", "resnet18", "--layer", "fc", "-o", str(out)]
    assert "not (C, H, W)" in one_line_error(no_weights, capsys)  # no random-weights note
    assert not out.exists()
    assert "video model" in one_line_error(["image", "--model", "r3d_18", "--layer", "x"], capsys)
