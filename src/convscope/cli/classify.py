"""``convscope classify``: ImageNet top-k classes of photos with a torchvision architecture and
its PyTorch weights, without PyTorch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import UsageError

EXAMPLES = """examples:
  convscope classify cat.jpg --model resnet18 --weights resnet18.pth
  convscope classify photos/ --model mobilenet_v2 --weights mnv2.pth --top 3 --json
  (--weights: a state dict written by torch.save(model.state_dict(), FILE) for the same
   torchvision constructor; also cs.save files and .safetensors)"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="ImageNet classes of photos with a torchvision architecture and PyTorch weights",
        description="Classify images (files or folders) with a convscope.models network: "
        "torchvision's preprocessing (resize 256, centre crop 224, ImageNet mean/std), "
        "softmax, top-k with the ImageNet class names.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("--model", default="resnet18", help="a convscope.models name (resnet18)")
    parser.add_argument("--weights", help="state dict file (torch.save, cs.save, .safetensors)")
    parser.add_argument("--top", type=int, default=5, help="classes shown per image (5)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (8)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _paths(items: list[str]) -> list[Path]:
    from ..io.image import image_files

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
    return paths


def _model(args: argparse.Namespace) -> tuple[Any, bool]:
    from .. import models
    from ..apps import classify

    if args.model not in models.list_models():
        raise UsageError(
            f"unknown --model {args.model!r}; choose from {', '.join(models.list_models())}"
        )
    if args.weights is None:
        print(
            "convscope classify: note: no --weights given, so the weights are random and the "
            "classes meaningless (pass a torch.save'd state dict with --weights FILE)",
            file=sys.stderr,
        )
        return models.get_model(args.model), True
    if not Path(args.weights).is_file():
        raise UsageError(f"--weights: no such file: {args.weights}")
    state = classify.read_weights(args.weights)
    if not hasattr(state, "items"):
        raise UsageError(
            f"--weights {args.weights} holds a {type(state).__name__}, not a state dict"
        )
    count = classify.num_classes_of(state) or 1000
    model = models.get_model(args.model, num_classes=count)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = " ".join(str(error).split("\n\t")[1:3])
        raise UsageError(
            f"--weights {args.weights} do not fit {args.model}: {first[:300]}"
        ) from None
    return model, count == 1000


def run(args: argparse.Namespace) -> int:
    import convscope as cs

    from ..apps import classify

    if args.top < 1 or args.batch_size < 1:
        raise UsageError("--top and --batch-size must be at least 1")
    paths = _paths(args.images)
    model, imagenet = _model(args)
    model.eval()
    labels = classify.imagenet_classes() if imagenet else None
    bar = None
    if not args.no_progress and len(paths) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="image", leave=False, file=sys.stderr)
    results = []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start : start + args.batch_size]
        batch = classify.preprocess(chunk)
        with cs.no_grad():
            logits = model(cs.tensor(batch)).numpy()
        for path, predictions in zip(chunk, classify.top_k(logits, args.top, labels), strict=True):
            results.append((path, predictions))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if args.json:
        print(
            json.dumps(
                [
                    {"image": str(path), "top": [p._asdict() for p in predictions]}
                    for path, predictions in results
                ],
                indent=1,
            )
        )
        return 0
    for path, predictions in results:
        print(f"{path}:")
        for p in predictions:
            print(f"  {p.probability * 100:6.2f}%  {p.label} ({p.index})")
    return 0
