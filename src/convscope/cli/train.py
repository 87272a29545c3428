"""``convscope train``: train the small CNN on digits (or MNIST-style IDX files)."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from ..apps import train as training
from ..data import load_digits, load_idx_dataset, split
from ..random import manual_seed
from .common import UsageError, output_dir, write_atomically

EXAMPLES = """examples:
  convscope train                       # digits bundled with scikit-learn, 15 epochs
  convscope train --epochs 5 --optimizer sgd --lr 0.05 -o runs/sgd
  convscope train --images train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz
  convscope train --epochs 5 --tensorboard runs/train   # then: tensorboard --logdir runs
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="train a small CNN (Conv-BN-ReLU-Pool) and save a checkpoint",
        description="Train two Conv-BN-ReLU-MaxPool blocks and a linear classifier with "
        "cross-entropy, print loss and accuracy per epoch, and save the weights.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", help="IDX image file (MNIST format); default: digits")
    parser.add_argument("--labels", help="IDX label file matching --images")
    parser.add_argument("--epochs", type=int, default=15, help="passes over the data (15)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (64)")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate (0.01)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of the data held out for testing (0.2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "-o",
        "--output",
        default="convscope-output/train",
        help="output folder for the checkpoint (convscope-output/train)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="log losses, accuracies, the first batch and conv feature maps for TensorBoard",
    )


def _progress(enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return lambda items, label, total: tqdm(
        items, desc=label, total=total, leave=False, file=sys.stderr
    )


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1 or args.batch_size < 1 or not 0 < args.test_fraction < 1 or args.lr <= 0:
        raise UsageError(
            "--epochs and --batch-size must be >= 1, --lr > 0, --test-fraction in (0, 1)"
        )
    if (args.images is None) != (args.labels is None):
        raise UsageError("--images and --labels go together")
    out = output_dir(args.output)
    manual_seed(args.seed)
    if args.images:
        images, labels = load_idx_dataset(args.images, args.labels)
        source = f"{args.images} + {args.labels}"
    else:
        images, labels = load_digits()
        source = "scikit-learn digits"
    train_idx, test_idx = split(len(labels), args.test_fraction, args.seed)
    train_set = (images[train_idx], labels[train_idx])
    test_set = (images[test_idx], labels[test_idx])
    classes = int(labels.numpy().max()) + 1
    model = training.build_model(images.shape[1], classes, min(images.shape[2:]))
    print(
        f"{source}: {len(train_idx)} training and {len(test_idx)} test images "
        f"{tuple(images.shape[1:])}, {classes} classes"
    )
    print(model)
    start = time.perf_counter()

    def report(r: training.EpochResult) -> None:
        print(
            f"epoch {r.epoch:3d}  train loss {r.train_loss:.4f}  acc {r.train_accuracy:.2%}  "
            f"| test loss {r.test_loss:.4f}  acc {r.test_accuracy:.2%}  "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )

    with ExitStack() as stack:
        logger = None
        if args.tensorboard:
            from ..apps.tensorboard import open_logger, viewer_hint

            logger = stack.enter_context(open_logger(output_dir(args.tensorboard)))
        history = training.train(
            model,
            train_set,
            test_set,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            seed=args.seed,
            progress=_progress(not args.no_progress),
            on_epoch=report,
            tensorboard=logger,
        )
    from ..io import save

    path = Path(out) / "model.cs"
    write_atomically(
        path,
        lambda tmp: save(
            {
                "state_dict": model.state_dict(),
                "meta": {
                    "in_channels": images.shape[1],
                    "num_classes": classes,
                    "image_size": min(images.shape[2:]),
                    "epochs": args.epochs,
                    "test_accuracy": history.final.test_accuracy,
                },
            },
            tmp,
        ),
    )
    print(f"test accuracy {history.final.test_accuracy:.2%}; checkpoint written to {path}")
    if args.tensorboard:
        print(viewer_hint(args.tensorboard))
    return 0
