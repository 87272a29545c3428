"""Helpers shared by the commands: one-line usage errors, output folders, safe writes."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser reporting bad options in one line on stderr (exit code 2) instead of
    the usage text first; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


#: largest tensor (elements) a command builds from its size options; beyond it the request is
#: refused up front instead of failing on allocation (2**27 float32 values = 512 MiB)
MAX_ELEMENTS = 1 << 27


def check_elements(shape: tuple[int, ...], what: str, limit: int = MAX_ELEMENTS) -> None:
    """``UsageError`` when a tensor of ``shape`` would hold more than ``limit`` elements.

    >>> check_elements((1, 3, 224, 224), "input")
    >>> check_elements((1, 2, 100000, 100000), "input")
    Traceback (most recent call last):
    ...
    convscope.cli.common.UsageError: input of shape 1x2x100000x100000 has 20000000000 elements; \
the limit is 134217728: choose smaller sizes
    """
    count = 1
    for size in shape:
        count *= int(size)
    if count > limit:
        raise UsageError(
            f"{what} of shape {'x'.join(map(str, shape))} has {count} elements; the limit is "
            f"{limit}: choose smaller sizes"
        )


def output_dir(path: str | os.PathLike) -> Path:
    """Create (if needed) and return a writable output folder, or raise ``UsageError``."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output path {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create output folder {folder}: {error.strerror}") from error
    if not os.access(folder, os.W_OK):
        raise UsageError(f"output folder {folder} is not writable")
    return folder


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)`` and move the result to ``path`` only once it is complete."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        write(temp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
