"""Train the bundled Fashion-MNIST TinyVGG with convscope itself (no PyTorch) and write it into
the package: ``src/convscope/samples/fashion/`` gets ``tinyvgg.safetensors`` (the weights),
``samples.npz`` (3 test images per class with their labels) and ``classes.json``.

Data: Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``) puts the
IDX files in /usr/share/datasets/fashion-mnist.  The run is deterministic (``cs.manual_seed``,
a seeded shuffle); the log of the run that made the bundled file is tools/train_fashion.log:

    python tools/train_fashion.py 2>&1 | tee tools/train_fashion.log

Inputs are the pixels / 255 (no other normalisation), as :func:`convscope.apps.fashion.preprocess`
gives them.  Training: Adam (lr 1e-3, cosine-annealed to 0 over 4 epochs), batch 64, cross-entropy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import convscope as cs
from convscope import nn, optim
from convscope.apps import fashion
from convscope.apps.train import evaluate
from convscope.data import DataLoader, TensorDataset, load_idx_dataset
from convscope.io import save_safetensors

DATA = Path("/usr/share/datasets/fashion-mnist")
PER_CLASS = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"IDX folder ({DATA})")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="compute threads (2)")
    parser.add_argument(
        "--limit", type=int, help="train on the first N images only (to time a run)"
    )
    parser.add_argument(
        "--output", type=Path, default=fashion.FOLDER, help="folder written (the package's)"
    )
    return parser.parse_args()


def write_bundle(
    out: Path, model: nn.Module, test_images: np.ndarray, test_labels: np.ndarray
) -> None:
    """The weights, the first ``PER_CLASS`` test images of every class, and the class names."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    save_safetensors(state, out / "tinyvgg.safetensors")
    picks = [i for c in range(10) for i in np.flatnonzero(test_labels == c)[:PER_CLASS]]
    np.savez_compressed(
        out / "samples.npz",
        images=test_images[picks],
        labels=test_labels[picks].astype(np.int64),
        test_index=np.asarray(picks, dtype=np.int64),
    )
    names = json.dumps(list(fashion.FASHION_CLASSES), indent=1) + "\n"
    (out / "classes.json").write_text(names, encoding="utf-8")


def main() -> int:
    args = parse_args()
    cs.set_num_threads(args.threads)
    print(
        f"convscope {cs.__version__}, numpy {np.__version__}, python {platform.python_version()}"
        f", {args.threads} threads; {vars(args)}",
        flush=True,
    )
    x_train, y_train = load_idx_dataset(
        args.data / "train-images-idx3-ubyte.gz", args.data / "train-labels-idx1-ubyte.gz"
    )
    x_test, y_test = load_idx_dataset(
        args.data / "t10k-images-idx3-ubyte.gz", args.data / "t10k-labels-idx1-ubyte.gz"
    )
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}", flush=True)

    cs.manual_seed(args.seed)
    model = fashion.fashion_tinyvgg()
    print(model, flush=True)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        generator=np.random.default_rng(args.seed),
    )
    loss_fn = nn.CrossEntropyLoss()
    test_uint8 = read_uint8(args.data)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        running, seen, correct = 0.0, 0, 0
        for step, (x, y) in enumerate(loader, 1):
            opt.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            running += float(loss.item()) * len(y)
            seen += len(y)
            correct += int((logits.detach().numpy().argmax(1) == y.numpy()).sum())
            if step % 200 == 0:
                print(
                    f"  epoch {epoch} step {step}/{len(loader)}  loss {running / seen:.4f}  "
                    f"acc {correct / seen:.2%}  ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        schedule.step()
        test_loss, test_acc = evaluate(model, x_test, y_test)
        print(
            f"epoch {epoch}  train loss {running / seen:.4f} acc {correct / seen:.2%}  "
            f"| test loss {test_loss:.4f} acc {test_acc:.2%}  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        model.eval()
        write_bundle(args.output, model, test_uint8, y_test.numpy())  # after every epoch
    size = (args.output / "tinyvgg.safetensors").stat().st_size
    print(f"training time {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {args.output}: tinyvgg.safetensors ({size:,} bytes), samples.npz, classes.json")
    print(f"test accuracy {test_acc:.2%}")
    return 0


def read_uint8(data: Path) -> np.ndarray:
    """The test images as stored, ``(10000, 28, 28)`` uint8."""
    from convscope.data import read_idx

    return read_idx(data / "t10k-images-idx3-ubyte.gz").astype(np.uint8)


if __name__ == "__main__":
    sys.exit(main())
