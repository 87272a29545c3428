"""Training end to end: convscope follows torch's loss curve, loads torch checkpoints, and the
``convscope train`` command reaches a real accuracy on the digits."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.nn as nn
from convscope import optim
from convscope.apps.train import build_model
from convscope.cli import main

torch = pytest.importorskip("torch")


# Convolutions feeding BatchNorm have no bias: its gradient is zero up to rounding noise, which
# Adam would normalise into full-size random steps in either library.
def torch_cnn():
    tn = torch.nn
    return tn.Sequential(
        tn.Conv2d(1, 6, 3, padding=1, bias=False),
        tn.BatchNorm2d(6),
        tn.ReLU(),
        tn.MaxPool2d(2),
        tn.Conv2d(6, 8, 3, padding=1, groups=2, bias=False),
        tn.BatchNorm2d(8),
        tn.ReLU(),
        tn.AvgPool2d(2),
        tn.Flatten(),
        tn.Linear(8 * 2 * 2, 10),
    )


def convscope_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, groups=2, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )


def copy_weights(source, target):
    target.load_state_dict({k: v.detach().numpy() for k, v in source.state_dict().items()})


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9}),
        ("Adam", {"lr": 3e-3}),
        ("AdamW", {"lr": 3e-3, "weight_decay": 0.05}),
    ],
)
def test_loss_curve_follows_torch(name, kwargs):
    """Same weights and batches: 20 steps give torch's losses and final weights."""
    torch.manual_seed(0)
    reference, ours = torch_cnn(), convscope_cnn()
    copy_weights(reference, ours)
    ref_opt = getattr(torch.optim, name)(reference.parameters(), **kwargs)
    our_opt = getattr(optim, name)(ours.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for step in range(20):
        x = rng.random((16, 1, 8, 8), dtype=np.float32)
        y = rng.integers(0, 10, 16)
        ref_opt.zero_grad()
        ref_loss = torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(x)), torch.from_numpy(y)
        )
        ref_loss.backward()
        ref_opt.step()
        our_opt.zero_grad()
        our_loss = nn.CrossEntropyLoss()(ours(cs.tensor(x)), cs.tensor(y))
        our_loss.backward()
        our_opt.step()
        assert our_loss.item() == pytest.approx(ref_loss.item(), rel=1e-4), f"step {step}"
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(
            ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-3, atol=1e-4, err_msg=key
        )


def test_torch_checkpoint_loads_into_the_same_architecture(tmp_path):
    """A model trained in torch and saved with torch.save gives torch's outputs in convscope."""
    torch.manual_seed(1)
    reference = torch_cnn()
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(3):  # move the BatchNorm running statistics away from their defaults
        opt.zero_grad()
        reference(torch.rand(8, 1, 8, 8)).square().mean().backward()
        opt.step()
    path = tmp_path / "model.pt"
    torch.save(reference.state_dict(), path)
    ours = convscope_cnn()
    ours.load_state_dict(cs.load_torch(path))
    reference.eval()
    ours.eval()
    x = np.random.default_rng(2).random((4, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(cs.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_train_command_learns_the_digits(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "6", "--no-progress", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    accuracy = float(text.rsplit("test accuracy ", 1)[1].split("%")[0]) / 100
    assert accuracy >= 0.95, text
    checkpoint = cs.load(out / "model.cs")
    model = build_model(1, 10, 8)  # the saved state loads into the architecture it trained
    model.load_state_dict(checkpoint["state_dict"])
    assert checkpoint["meta"]["num_classes"] == 10


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "0"],
        ["train", "--images", "missing-idx"],
        ["train", "--images", "a", "--labels", "b"],
    ],
)
def test_train_command_rejects_bad_input_in_one_line(argv, capsys, tmp_path):
    assert main([*argv, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
