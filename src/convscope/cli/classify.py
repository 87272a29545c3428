"""``convscope classify``: the ImageNet classes of photos with a torchvision architecture and its
PyTorch weights, without PyTorch (logic in :mod:`convscope.apps.classify`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import UsageError

EXAMPLES = """examples:
  convscope classify cat.jpg --model resnet18 --weights resnet18.pth
  convscope classify photos/ --model mobilenet_v2 --weights mnv2.pth --top 3 --json

--weights: a state dict saved in PyTorch with torch.save(model.state_dict(), FILE) for the same
torchvision architecture (also convscope.save files and .safetensors).  Preprocessing is
torchvision's: shorter side resized to 256, centre crop 224, ImageNet mean and std."""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="ImageNet classes of photos with a torchvision architecture and PyTorch weights",
        description="Classify images (files or folders) with a convscope.models network and "
        "print the top classes with their softmax probabilities.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("--model", default="resnet18", help="a convscope.models name (resnet18)")
    parser.add_argument(
        "--weights", metavar="FILE", help="state dict (torch.save, convscope.save, .safetensors)"
    )
    parser.add_argument("--top", type=int, default=5, help="classes shown per image (5)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (8)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def image_paths(items: list[str]) -> list[Path]:
    """The files named by ``items``, folders giving their images (sorted), each checked from
    its header (exists, is a supported image, not too large) before any work starts."""
    from ..io.image import image_files, probe_image

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise UsageError(f"no images (JPEG, PNG, BMP, TIFF) in folder {path}")
            paths += found
        elif path.exists():
            paths.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    for path in paths:
        probe_image(path)
    return paths


def random_weights_note(command: str, meaningless: str) -> None:
    """The one line on stderr saying a network runs with random initial weights."""
    print(
        f"convscope {command}: note: no --weights given, so the weights are random and "
        f"{meaningless} (pass a state dict from torch.save(model.state_dict(), FILE) "
        "with --weights FILE)",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    from ..apps import classify

    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    paths = image_paths(args.images)
    network = classify.load_model(args.model, args.weights)
    if network.random:
        random_weights_note("classify", "the classes meaningless")
    bar = None
    if not args.no_progress and len(paths) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="image", leave=False, file=sys.stderr)
    try:
        results = list(
            classify.classify(
                network,
                paths,
                args.top,
                batch_size=args.batch_size,
                done=None if bar is None else bar.update,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        rows = [
            {"image": str(path), "top": [p._asdict() for p in predictions]}
            for path, predictions in results
        ]
        print(json.dumps(rows, indent=1))
        return 0
    for path, predictions in results:
        print(f"{path}:")
        for p in predictions:
            print(f"  {p.probability * 100:6.2f}%  {p.label} ({p.index})")
    return 0
