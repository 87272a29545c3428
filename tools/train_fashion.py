"""Train the bundled Fashion-MNIST TinyVGG with convscope itself (no PyTorch) and write it into
the package: ``src/convscope/samples/fashion/`` gets ``tinyvgg.safetensors`` (the weights),
3 test images per class as PNGs listed with their labels in ``samples.json``, and
``classes.json``.  ``--samples-only`` writes the images and class names without training.

Data: Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``) puts the
IDX files in /usr/share/datasets/fashion-mnist.  The run is deterministic (``cs.manual_seed``,
a seeded shuffle); the log of the run that made the bundled file is tools/train_fashion.log:

    python tools/train_fashion.py --algorithm fft > tools/train_fashion.log 2>&1

(``--algorithm fft`` was the fastest of convscope's convolution algorithms for these shapes on
the 2-core machine used; other algorithms round differently in the last bits, so the bundled
file is reproduced bit for bit only with the same option, NumPy and thread count.)
Inputs are the pixels / 255 (no other normalisation), as :func:`convscope.apps.fashion.preprocess`
gives them.  Training: Adam (lr 1e-3, cosine-annealed to 0 over 4 epochs), batch 64, cross-entropy.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

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
        "--algorithm", help="force a convolution algorithm (cs.conv_algorithm), e.g. fft"
    )
    parser.add_argument(
        "--samples-only", action="store_true", help="write the sample images only, no training"
    )
    parser.add_argument(
        "--output", type=Path, default=fashion.FOLDER, help="folder written (the package's)"
    )
    return parser.parse_args()


def slug(name: str) -> str:
    """``"T-shirt/top"`` -> ``"t-shirt-top"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_weights(out: Path, model: nn.Module) -> Path:
    """The state dict as ``tinyvgg.safetensors`` (float32, about 128 KB)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tinyvgg.safetensors"
    save_safetensors({k: v.detach() for k, v in model.state_dict().items()}, path)
    return path


def write_samples(out: Path, test_images: np.ndarray, test_labels: np.ndarray) -> None:
    """The first ``PER_CLASS`` test images of every class as 28x28 grayscale PNGs
    (``<label>_<class>_<k>.png``), ``samples.json`` listing them with their labels and test-set
    indices, and ``classes.json`` with the class names."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for label, name in enumerate(fashion.FASHION_CLASSES):
        for k, index in enumerate(np.flatnonzero(test_labels == label)[:PER_CLASS], 1):
            file = f"{label}_{slug(name)}_{k}.png"
            Image.fromarray(test_images[index], mode="L").save(out / file, optimize=True)
            entries.append({"file": file, "label": label, "test_index": int(index)})
    (out / "samples.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    names = json.dumps(list(fashion.FASHION_CLASSES), indent=1) + "\n"
    (out / "classes.json").write_text(names, encoding="utf-8")


def main() -> int:
    args = parse_args()
    cs.set_num_threads(args.threads)
    print(
        f"convscope {cs.__version__}, numpy {np.__version__}, python {platform.python_version()}"
        f", {args.threads} threads; epochs {args.epochs}, batch size {args.batch_size}, "
        f"lr {args.lr}, seed {args.seed}, limit {args.limit}, algorithm {args.algorithm}",
        flush=True,
    )
    x_train, y_train = load_idx_dataset(
        args.data / "train-images-idx3-ubyte.gz", args.data / "train-labels-idx1-ubyte.gz"
    )
    x_test, y_test = load_idx_dataset(
        args.data / "t10k-images-idx3-ubyte.gz", args.data / "t10k-labels-idx1-ubyte.gz"
    )
    test_uint8 = read_uint8(args.data)
    if args.samples_only:
        write_samples(args.output, test_uint8, y_test.numpy())
        print(f"wrote the samples and class names into {args.output}")
        return 0
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}", flush=True)

    if args.algorithm:
        cs.set_conv_algorithm(args.algorithm)
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
            if step % 100 == 0:
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
        write_weights(args.output, model)  # after every epoch
    write_samples(args.output, test_uint8, y_test.numpy())
    size = (args.output / "tinyvgg.safetensors").stat().st_size
    print(f"training time {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {args.output}: tinyvgg.safetensors ({size:,} bytes), samples, classes.json")
    print(f"test accuracy {test_acc:.2%}")
    return 0


def read_uint8(data: Path) -> np.ndarray:
    """The test images as stored, ``(10000, 28, 28)`` uint8."""
    from convscope.data import read_idx

    return read_idx(data / "t10k-images-idx3-ubyte.gz").astype(np.uint8)


if __name__ == "__main__":
    sys.exit(main())
