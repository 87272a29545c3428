"""The trained Fashion-MNIST TinyVGG that ships with convscope: its files, its architecture, its
accuracy on the bundled test pictures, its numbers against torch with the same weights, its
preprocessing, and ``image`` / ``kernels`` / ``explain`` / ``classify`` with ``--model fashion``."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import nn
from convscope.apps import classify, fashion
from convscope.cli import main
from convscope.io import load_safetensors, save_safetensors

torch = pytest.importorskip("torch")

CONVS = {"conv1_1": (16, 1), "conv1_2": (16, 16), "conv2_1": (32, 16), "conv2_2": (32, 32)}


@pytest.fixture(scope="module")
def model():
    return fashion.load_fashion_model()


@pytest.fixture(scope="module")
def samples():
    return fashion.fashion_samples()


def torch_tinyvgg(state: dict) -> torch.nn.Module:
    """The same architecture written in torch, with the bundled weights loaded strictly."""
    tnn = torch.nn
    net = tnn.Sequential(
        OrderedDict(
            conv1_1=tnn.Conv2d(1, 16, 3, padding=1),
            relu1_1=tnn.ReLU(),
            conv1_2=tnn.Conv2d(16, 16, 3, padding=1),
            relu1_2=tnn.ReLU(),
            pool1=tnn.MaxPool2d(2),
            conv2_1=tnn.Conv2d(16, 32, 3, padding=1),
            relu2_1=tnn.ReLU(),
            conv2_2=tnn.Conv2d(32, 32, 3, padding=1),
            relu2_2=tnn.ReLU(),
            pool2=tnn.MaxPool2d(2),
            flatten=tnn.Flatten(),
            fc=tnn.Linear(32 * 7 * 7, 10),
        )
    )
    net.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in state.items()})
    return net.eval()


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- files and architecture ------------------------------------------------------------


def test_bundled_files():
    assert fashion.WEIGHTS.stat().st_size <= 1_000_000
    assert fashion.class_names() == fashion.FASHION_CLASSES
    assert (
        fashion.FASHION_CLASSES[0] == "T-shirt/top" and fashion.FASHION_CLASSES[9] == "Ankle boot"
    )
    entries = json.loads(fashion.SAMPLES.read_text())
    assert [e["label"] for e in entries] == [c for c in range(10) for _ in range(3)]
    assert len({e["test_index"] for e in entries}) == 30
    for label, path in fashion.sample_paths():
        with Image.open(path) as image:
            assert (image.mode, image.size) == ("L", (28, 28))
        assert path.name.startswith(f"{label}_")
    assert fashion.default_sample().name.startswith("9_ankle-boot")


def test_architecture(model):
    names = [name for name, _ in model.named_children()]
    assert names == [
        "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
        "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2", "flatten", "fc",
    ]  # fmt: skip
    assert not model.training and not any(m.training for m in model.modules())
    for name, (out, inp) in CONVS.items():
        conv = model.get_submodule(name)
        assert isinstance(conv, nn.Conv2d)
        assert conv.weight.shape == (out, inp, 3, 3) and conv.padding == (1, 1)
    assert isinstance(model.pool1, nn.MaxPool2d) and model.fc.weight.shape == (10, 1568)
    assert sum(p.numel() for p in model.parameters()) == 32058
    # trained, not the initialisation: the bundled state differs from a fresh network's
    fresh = fashion.fashion_tinyvgg().state_dict()
    assert all(not np.allclose(fresh[k].numpy(), v.numpy()) for k, v in model.state_dict().items())


def test_samples_are_classified(model, samples):
    batch = np.concatenate([fashion.preprocess(image) for _, image in samples])
    labels = np.array([label for label, _ in samples])
    with cs.no_grad():
        predicted = model(cs.from_numpy(batch)).numpy().argmax(axis=1)
    agreement = float((predicted == labels).mean())
    assert agreement >= 0.8, (agreement, predicted, labels)


def test_matches_torch(model, samples):
    net = torch_tinyvgg(load_safetensors(fashion.WEIGHTS))
    rng = np.random.default_rng(0)
    pictures = np.concatenate([fashion.preprocess(image) for _, image in samples])
    noise = rng.random((4, 1, 28, 28), dtype=np.float32)
    for batch in (pictures, noise):
        with cs.no_grad():
            ours = model(cs.from_numpy(batch)).numpy()
        with torch.no_grad():
            theirs = net(torch.from_numpy(batch)).numpy()
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
        assert (ours.argmax(1) == theirs.argmax(1)).all()


# --- preprocessing -------------------------------------------------------------------


def test_preprocess_is_the_training_scaling(samples):
    _, image = samples[0]
    x = fashion.preprocess(image)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 0], image.astype(np.float32) / 255.0)
    # a PIL image, an RGB array and a float array give the same input
    np.testing.assert_array_equal(fashion.preprocess(Image.fromarray(image)), x)
    np.testing.assert_allclose(fashion.preprocess(np.stack([image] * 3, -1)), x, atol=1e-6)
    np.testing.assert_allclose(fashion.preprocess(image / 255.0), x, atol=1e-6)
    np.testing.assert_allclose(fashion.preprocess(image, invert=True), 1 - x, atol=1e-6)


def test_preprocess_resizes_and_inverts():
    big = np.full((84, 56), 255, dtype=np.uint8)
    big[20:60, 14:42] = 0  # a dark object on white
    x = fashion.preprocess(big, invert="auto")
    assert x.shape == (1, 1, 28, 28)
    assert x[0, 0, 0, 0] == 0.0 and x[0, 0, 14, 14] == pytest.approx(1.0)
    assert fashion.preprocess(big)[0, 0, 0, 0] == 1.0  # not inverted unless asked
    with pytest.raises(ValueError, match="shape"):
        fashion.preprocess(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="invert"):
        fashion.preprocess(big, invert="yes")


def test_load_model_by_name(tmp_path):
    network = classify.load_model("fashion")
    assert (network.num_classes, network.random, network.inputs) == (10, False, "fashion")
    assert classify.class_labels(network) == fashion.FASHION_CLASSES
    wrong = tmp_path / "wrong.safetensors"
    save_safetensors({"fc.weight": cs.zeros(10, 3)}, wrong)
    with pytest.raises(ValueError, match="do not fit fashion"):
        classify.load_model("fashion", wrong)
    with pytest.raises(ValueError, match="did you mean fashion"):
        classify.load_model("fashon")


# --- command line ---------------------------------------------------------------------


def test_image_feature_maps(model, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["image", "--model", "fashion", "--layer", "conv2_1", "-o", str(out)]) == 0
    assert "fashion.conv2_1 (Conv2d) output (32, 14, 14)" in capsys.readouterr().out
    stem = f"{fashion.default_sample().stem}_fashion.conv2_1"
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 33 and f"{stem}_sheet.png" in files
    # channel files hold the layer's real maps on the bundled picture (min-max scaled)
    x = fashion.load_image(fashion.default_sample())
    with cs.no_grad():
        maps = model[:6](cs.from_numpy(x)).numpy()[0]
    with Image.open(out / f"{stem}_channel_3.png") as image:
        pixels = np.asarray(image, dtype=np.float64)
    channel = maps[3]
    expected = (channel - channel.min()) / (channel.max() - channel.min()) * 255
    assert np.abs(pixels - expected).max() <= 1.0


def test_image_on_a_light_photo(tmp_path, capsys):
    picture = tmp_path / "shoe.png"
    Image.fromarray(np.full((40, 60, 3), 230, np.uint8)).save(picture)
    out = tmp_path / "o"
    assert (
        main(["image", str(picture), "--model", "fashion", "--layer", "pool2", "-o", str(out)]) == 0
    )
    assert "output (32, 7, 7)" in capsys.readouterr().out
    assert (out / "shoe_fashion.pool2_sheet.png").is_file()


def test_kernels_are_the_learned_filters(model, tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["kernels", "--model", "fashion", "--layer", "conv1_1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    weight = model.conv1_1.weight.numpy()
    assert f"values {weight.min():+.3g} .. {weight.max():+.3g}" in text
    assert (out / "kernels_fashion.conv1_1.png").is_file()


def test_explain_a_trained_element(model, capsys):
    argv = ["explain", "--model", "fashion", "--layer", "conv2_1", "--at", "0,5,7,7", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches"] is True
    # the element is the trained layer's output on the activation the picture gives torch
    net = torch_tinyvgg(load_safetensors(fashion.WEIGHTS))
    x = torch.from_numpy(fashion.load_image(fashion.default_sample()))
    with torch.no_grad():
        expected = float(net[:6](x)[0, 5, 7, 7])
    assert result["actual"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    weights = result["channels"][0]
    assert weights["taps"][0]["weight"] == pytest.approx(
        float(model.conv2_1.weight.numpy()[5, 0, 0, 0])
    )
    assert main(["explain", "--model", "fashion"]) == 0  # conv1_1, the centre element
    text = capsys.readouterr().out
    assert text.startswith("fashion.conv1_1: ") and "Element y[0, 0, 14, 14]" in text
    assert "MATCH" in text


def test_classify_the_bundled_pictures(capsys):
    paths = [str(path) for _, path in fashion.sample_paths()[::3]]
    assert main(["classify", *paths, "--model", "fashion", "--top", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    predicted = [row["top"][0]["label"] for row in rows]
    assert sum(p == c for p, c in zip(predicted, fashion.FASHION_CLASSES, strict=True)) >= 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["image", "--model", "fashion", "--layer", "conv3"], "fashion has no layer 'conv3'"),
        (["image", "--model", "fashion", "--layer", "fc"], "not (C, H, W) feature maps"),
        (["kernels", "--model", "fashion", "--layer", "relu1_1"], "is a ReLU, not a convolution"),
        (["kernels", "--model", "fashion", "--layer", "conv"], "did you mean conv1_1"),
        (["explain", "--model", "fashion", "--layer", "pool1"], "not a convolution"),
        (["explain", "--model", "fashion", "--layer", "x"], "fashion has no layer 'x'"),
        (["explain", "--model", "fashion", "--stride", "2"], "--stride: --model explains"),
        (["explain", "--layer", "conv1_1"], "--layer goes with --model"),
        (["explain", "--model", "fashion", "--image", "missing.png"], "no such file"),
        (["explain", "--model", "fashion", "--at", "0,0,28,0"], "out of bounds"),
    ],
)
def test_one_line_errors(argv, message, tmp_path, capsys):
    err = one_line_error([*argv, *(["-o", str(tmp_path)] if argv[0] != "explain" else [])], capsys)
    assert message in err, err
    assert not any(tmp_path.iterdir())
