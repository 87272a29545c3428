"""Regenerate ``src/convscope/samples/imagenet_classes.txt``: the 1000 ImageNet class names in
class-index order, as torchvision lists them (run with the test extra installed).

    python tools/make_imagenet_classes.py
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src/convscope/samples/imagenet_classes.txt"


def main() -> None:
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    TARGET.write_text("\n".join(_IMAGENET_CATEGORIES) + "\n", encoding="utf-8")
    print(f"wrote {len(_IMAGENET_CATEGORIES)} names to {TARGET}")


if __name__ == "__main__":
    main()
