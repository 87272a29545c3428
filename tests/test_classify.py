"""convscope classify against torchvision: the preprocessing, the top-k classes and
probabilities of a resnet18 state dict, weights files, folders, and one-line errors."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import samples
from convscope.apps import classify, imagenet
from convscope.cli import main
from convscope.io.image import image_files

torch = pytest.importorskip("torch")
sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
)
torchvision = pytest.importorskip("torchvision")
T = torchvision.transforms
PHOTO = samples.path("photo.jpg")


def torch_transform():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(mean, std)])


def torch_input(path) -> torch.Tensor:
    with Image.open(path) as image:  # as torchvision's ImageFolder opens files
        return torch_transform()(image.convert("RGB"))


@pytest.fixture
def folder(tmp_path):
    """Odd sizes (wide, tall, already 256 on the short side, upscaled, odd crop offsets) and
    modes (RGBA, grayscale) that torchvision's transform sees through ``convert("RGB")``."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (width, height), mode in [
        ("wide.png", (301, 257), "RGB"),
        ("tall.jpg", (240, 333), "RGB"),
        ("exact.png", (256, 301), "RGBA"),
        ("tiny.bmp", (37, 50), "L"),
    ]:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        data = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        Image.fromarray(data.squeeze(-1) if channels == 1 else data, mode).save(folder / name)
    (folder / "notes.txt").write_text("not an image, skipped by name")
    return folder


def test_preprocessing_equals_torchvisions(folder):
    paths = [PHOTO, *image_files(folder)]
    assert len(paths) == 5
    for path in paths:
        ours = imagenet.load_image(path)
        assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, torch_input(path).numpy(), rtol=1e-6, atol=1e-6)
    batch = imagenet.preprocess(paths[:2])
    np.testing.assert_array_equal(batch[1], imagenet.load_image(paths[1]))
    assert imagenet.resized_size(37, 50) == (256, 345)


def test_class_names_are_torchvisions():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert list(imagenet.imagenet_classes()) == list(_IMAGENET_CATEGORIES)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def torch_top5(model, path) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        probs = torch.softmax(model(torch_input(path)[None]), 1)[0].numpy()
    top = np.argsort(-probs, kind="stable")[:5]
    return top, probs[top]


def test_top5_matches_torchvision(weights, folder, capsys):
    path, model = weights
    argv = ["classify", str(folder), str(PHOTO), "--weights", str(path), "--batch-size", "3"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert "0/5" in captured.err  # the progress bar, on stderr
    results = json.loads(captured.out)
    names = [r["image"].rsplit("/", 1)[-1] for r in results]
    assert names == ["exact.png", "tall.jpg", "tiny.bmp", "wide.png", "photo.jpg"]
    for result in results:
        top, probs = torch_top5(model, result["image"])
        assert [p["index"] for p in result["top"]] == top.tolist()
        np.testing.assert_allclose([p["probability"] for p in result["top"]], probs, rtol=1e-4)
        labels = [imagenet.imagenet_classes()[i] for i in top]
        assert [p["label"] for p in result["top"]] == labels

    assert main(["classify", str(PHOTO), "--weights", str(path), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    top, probs = torch_top5(model, PHOTO)
    assert lines[0] == f"{PHOTO}:" and len(lines) == 4
    assert lines[1].split() == [f"{probs[0] * 100:.2f}%", *labels_of(top[0]), f"({top[0]})"]


def labels_of(index: int) -> list[str]:
    return imagenet.imagenet_classes()[index].split()


def as_array(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def test_weight_file_formats_give_the_same_state(weights, tmp_path):
    path, _ = weights
    state = {k: as_array(v) for k, v in classify.read_weights(path).items()}
    cs.save(state, tmp_path / "model.cs")
    cs.io.save_safetensors(state, tmp_path / "model.safetensors")
    cs.io.save_safetensors(state, tmp_path / "no_suffix")  # told apart by content
    torch.save({"model": torch.load(path), "epoch": 3}, tmp_path / "checkpoint.pth")
    for name in ("model.cs", "model.safetensors", "no_suffix", "checkpoint.pth"):
        loaded = classify.read_weights(tmp_path / name)
        assert sorted(loaded) == sorted(state), name
        for key, value in state.items():
            np.testing.assert_array_equal(as_array(loaded[key]), value)


def test_random_weights_note(capsys):
    assert main(["classify", str(PHOTO), "--top", "2"]) == 0
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1
    assert "weights are random" in captured.err and "--weights FILE" in captured.err
    assert captured.out.count("%") == 2


def test_one_line_errors(weights, tmp_path, capsys):
    path, _ = weights
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    photo = str(PHOTO)
    cases = [
        ([photo, "--model", "mobilenet_v2", "--weights", str(path)], "missing keys features.0"),
        ([photo, "--model", "mobilenet_v2", "--weights", str(path)], "unexpected keys conv1."),
        ([photo, "--model", "resnet34", "--weights", str(path)], "missing keys layer1.2"),
        ([photo, "--model", "resnet19"], "did you mean resnet18"),
        ([photo, "--model", "r3d_18"], "video model"),
        ([photo, "--weights", str(tmp_path / "missing.pth")], "no such weights file"),
        ([photo, "--weights", str(tmp_path / "tensor.pth")], "not a state dict"),
        ([photo, "--top", "0"], "--top"),
        ([str(tmp_path / "nothing.jpg")], "no such file"),
        ([str(tmp_path / "fake.jpg")], "fake.jpg"),
        ([str(tmp_path / "empty")], "no images"),
    ]
    for argv, text in cases:
        assert main(["classify", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and text in err, (argv, err)


def test_other_class_counts_print_indices(tmp_path, capsys):
    torch.manual_seed(1)
    model = torchvision.models.resnet34(num_classes=10).eval()
    path = tmp_path / "ten.pth"
    torch.save(model.state_dict(), path)
    argv = ["classify", str(PHOTO), "--model", "resnet34", "--weights", str(path), "--json"]
    assert main(argv) == 0
    (result,) = json.loads(capsys.readouterr().out)
    top, probs = torch_top5(model, PHOTO)
    assert [p["index"] for p in result["top"]] == top.tolist()
    assert [p["label"] for p in result["top"]] == [f"class {i}" for i in top]
    np.testing.assert_allclose([p["probability"] for p in result["top"]], probs, rtol=1e-4)
    assert classify.load_model("resnet34", path).num_classes == 10
