"""convscope classify against torchvision: preprocessing, top-k with class names, weights
files, folders, and one-line errors."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import samples
from convscope.apps import classify
from convscope.cli import main

torch = pytest.importorskip("torch")
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)
torchvision = pytest.importorskip("torchvision")
T = torchvision.transforms


def _torch_transform():
    return T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(classify.MEAN, classify.STD)]
    )


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size in (("wide.png", (301, 257)), ("tall.jpg", (240, 333))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / name
        )
    return folder


def test_preprocessing_equals_torchvisions(images):
    for path in [samples.path("photo.jpg"), *sorted(images.iterdir())]:
        ours = classify.load_image(path)
        with Image.open(path) as image:
            theirs = _torch_transform()(image.convert("RGB")).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_top5_matches_torchvision(weights, images, capsys):
    path, model = weights
    assert main(["classify", str(images), str(samples.path("photo.jpg")), "--weights",
                 str(path), "--json", "--no-progress"]) == 0  # fmt: skip
    results = json.loads(capsys.readouterr().out)
    assert [r["image"].rsplit("/", 1)[-1] for r in results] == ["tall.jpg", "wide.png", "photo.jpg"]
    for result in results:
        with Image.open(result["image"]) as image:
            x = _torch_transform()(image.convert("RGB"))[None]
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)[0].numpy()
        top = np.argsort(-probs)[:5]
        assert [p["index"] for p in result["top"]] == top.tolist()
        np.testing.assert_allclose([p["probability"] for p in result["top"]], probs[top], rtol=1e-4)
        assert result["top"][0]["label"] == classify.imagenet_classes()[top[0]]


def test_random_weights_note_and_errors(weights, capsys, tmp_path):
    photo = str(samples.path("photo.jpg"))
    assert main(["classify", photo, "--top", "2"]) == 0
    captured = capsys.readouterr()
    assert "weights are random" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out.count("%") == 2
    for argv, text in [
        (["--model", "vgg11", "--weights", str(weights[0])], "do not fit vgg11"),
        (["--model", "nope"], "unknown --model"),
        (["--weights", str(tmp_path / "missing.pth")], "no such file"),
        (["--top", "0"], "--top"),
    ]:
        assert main(["classify", photo, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert text in err[-1] and "Traceback" not in "".join(err)
    assert main(["classify", str(tmp_path / "nothing.jpg")]) == 2


def test_other_class_counts_print_indices(tmp_path, capsys):
    torch.manual_seed(1)
    path = tmp_path / "ten.pth"
    torch.save(torchvision.models.mobilenet_v2(num_classes=10).state_dict(), path)
    photo = str(samples.path("photo.jpg"))
    assert main(["classify", photo, "--model", "mobilenet_v2", "--weights", str(path)]) == 0
    assert "class " in capsys.readouterr().out
    model = cs.models.mobilenet_v2(num_classes=10)
    assert classify.num_classes_of(model.state_dict()) == 10
