"""convscope kernels --model --weights --layer: a torchvision network's filters, drawn."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.cli.kernels import colour_filters

torch = pytest.importorskip("torch")
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)
torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_first_layer_as_colour_filters(weights, tmp_path, capsys):
    path, model = weights
    out = tmp_path / "k"
    assert main(["kernels", "--model", "resnet18", "--weights", str(path), "--layer", "conv1",
                 "-o", str(out)]) == 0  # fmt: skip
    picture = np.asarray(Image.open(out / "kernels_resnet18.conv1.png"))
    weight = model.conv1.weight.detach().numpy()
    np.testing.assert_array_equal(picture, colour_filters(weight))
    first = weight[0].transpose(1, 2, 0)
    expected = np.rint((first - first.min()) / (first.max() - first.min()) * 255)
    zoom = 56 // 7
    np.testing.assert_array_equal(
        picture[2 : 2 + 7 * zoom : zoom, 2 : 2 + 7 * zoom : zoom], expected
    )
    assert "colour filters" in capsys.readouterr().out


def test_inner_layer_grid_and_errors(weights, tmp_path, capsys):
    path, _ = weights
    out = tmp_path / "k"
    argv = ["kernels", "--model", "resnet18", "--weights", str(path), "-o", str(out)]
    assert main([*argv, "--layer", "layer1.0.conv1", "--max-channels", "4"]) == 0
    assert (out / "kernels_resnet18.layer1.0.conv1.png").exists()
    for extra, text in [
        (["--layer", "bn1"], "not a convolution"),
        (["--layer", "nope"], "conv layers: conv1"),
        ([], "needs --layer"),
    ]:
        assert main([*argv, *extra]) == 2
        assert text in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["kernels", "--model", "vgg11", "--weights", str(path), "--layer", "x"]) == 2
    assert "do not fit vgg11" in capsys.readouterr().err


def test_image_model_layer_maps_equal_torchs(weights, tmp_path, capsys):
    import convscope as cs
    from convscope import samples
    from convscope.apps import classify
    from convscope.cli.image import model_feature_maps

    path, model = weights
    ours = cs.models.resnet18()
    ours.load_state_dict(cs.load_torch(path))
    picture = classify.load_image(samples.path("photo.jpg"))[None]
    maps = model_feature_maps(ours, "layer1.0.conv1", picture)
    caught = {}
    model.eval().layer1[0].conv1.register_forward_hook(lambda m, a, o: caught.update(o=o))
    with torch.no_grad():
        model(torch.from_numpy(picture))
    reference = caught["o"].numpy()
    assert np.abs(maps - reference).max() <= 1e-4 * np.abs(reference).max()

    out = tmp_path / "maps"
    argv = ["image", "--model", "resnet18", "--weights", str(path), "-o", str(out)]
    assert main([*argv, "--layer", "layer1.0.conv1"]) == 0
    assert (out / "photo_resnet18.layer1.0.conv1.png").exists()
    assert main([*argv, "--layer", "nope"]) == 2
    assert "no layer 'nope'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main([*argv[:3], "-o", str(out)]) == 2  # --layer missing
