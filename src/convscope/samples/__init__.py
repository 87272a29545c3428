"""Sample data shipped with the package, so every command works with no input given.

>>> sorted(p.suffix for p in files())  # doctest: +SKIP
['.png', '.wav', ...]
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The path of the bundled sample ``name`` (e.g. ``"photo.png"``); ``FileNotFoundError``
    names the available ones if it is missing."""
    candidate = FOLDER / name
    if not candidate.is_file():
        available = ", ".join(p.name for p in files()) or "none"
        raise FileNotFoundError(f"no bundled sample {name!r} (available: {available})")
    return candidate


def files() -> list[Path]:
    """All bundled sample files."""
    return sorted(p for p in FOLDER.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))
