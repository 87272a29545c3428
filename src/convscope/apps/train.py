"""Train a small CNN (Conv-BN-ReLU-Pool blocks) on an image classification dataset.

>>> from convscope.apps.train import build_model
>>> print(build_model(in_channels=1, num_classes=10, image_size=8))
Sequential(
  (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (2): ReLU()
  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (4): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (5): BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (6): ReLU()
  (7): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (8): Flatten(start_dim=1, end_dim=-1)
  (9): Linear(in_features=128, out_features=10, bias=True)
)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import nn, optim
from ..autograd import no_grad
from ..data import DataLoader, TensorDataset
from ..tensor import Tensor


def build_model(in_channels: int, num_classes: int, image_size: int, width: int = 16) -> nn.Module:
    """Two Conv-BN-ReLU-MaxPool blocks, then a linear classifier."""
    side = image_size // 4
    if side < 1:
        raise ValueError(f"images must be at least 4x4 pixels, got {image_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, num_classes),
    )


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float


@dataclass
class History:
    epochs: list[EpochResult] = field(default_factory=list)

    @property
    def final(self) -> EpochResult:
        return self.epochs[-1]


def evaluate(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 512
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on a labelled set."""
    was_training = model.training
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct = 0.0, 0
    with no_grad():
        for x, y in DataLoader(TensorDataset(images, labels), batch_size=batch_size):
            logits = model(x)
            total_loss += float(loss_fn(logits, y).item())
            correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
    model.train(was_training)
    count = max(len(labels), 1)
    return total_loss / count, correct / count


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> optim.Optimizer:
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r} (choose adam or sgd)")


def train(
    model: nn.Module,
    train_set: tuple[Tensor, Tensor],
    test_set: tuple[Tensor, Tensor],
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 1e-2,
    optimizer: str = "adam",
    seed: int = 0,
    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    tensorboard: Any = None,
) -> History:
    """Train with cross-entropy, evaluating on ``test_set`` after every epoch.

    With a :class:`~convscope.apps.tensorboard.TensorBoardLogger` as ``tensorboard``: the first
    input batch (``input/batch``), per epoch the losses and accuracies (``loss/train``,
    ``loss/test``, ``accuracy/train``, ``accuracy/test``) and the first conv layer's feature
    maps of the batch's first image (``conv1/feature_maps``).
    """
    first_batch = None
    opt = make_optimizer(optimizer, model.parameters(), lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loader = DataLoader(
        TensorDataset(*train_set),
        batch_size=batch_size,
        shuffle=True,
        generator=np.random.default_rng(seed),
    )
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    for epoch in range(1, epochs + 1):
        model.train()
        batches = loader if progress is None else progress(loader, f"epoch {epoch}", len(loader))
        for x, y in batches:
            if tensorboard is not None and first_batch is None:
                first_batch = x
                tensorboard.add_image("input/batch", _batch_picture(x.numpy()), 0)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        schedule.step()
        train_loss, train_acc = evaluate(model, *train_set)
        test_loss, test_acc = evaluate(model, *test_set)
        result = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc)
        history.epochs.append(result)
        if tensorboard is not None:
            _log_epoch(tensorboard, model, first_batch, result)
        if on_epoch is not None:
            on_epoch(result)
    return history


def _batch_picture(batch: np.ndarray) -> np.ndarray:
    """A batch ``(N, C, H, W)`` tiled into one picture (colour if C is 3, else channel 0)."""
    from ..viz.grids import tile, to_unit_range

    return tile(to_unit_range(batch if batch.shape[1] == 3 else batch[:, 0]))


def _log_epoch(tensorboard: Any, model: nn.Module, batch: Tensor | None, r: EpochResult) -> None:
    tensorboard.add_scalar("loss/train", r.train_loss, r.epoch)
    tensorboard.add_scalar("loss/test", r.test_loss, r.epoch)
    tensorboard.add_scalar("accuracy/train", r.train_accuracy, r.epoch)
    tensorboard.add_scalar("accuracy/test", r.test_accuracy, r.epoch)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or batch is None:
        return
    with no_grad():
        maps = conv(batch[:1]).numpy()[0]
    tensorboard.add_feature_maps("conv1/feature_maps", maps, r.epoch)
