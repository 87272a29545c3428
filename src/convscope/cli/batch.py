"""Folder runs shared by ``convscope image`` and ``convscope audio``: files found in a folder
that cannot be used are skipped (one line each, exit code 1) instead of stopping the batch,
and ``--scheduler``/``--workers`` run the files as dask tasks on a ``distributed`` cluster.

>>> outcome = FileOutcome(0, Path("a.png"), error="a.png: not an image")
>>> outcome.skipped
True
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import UsageError

#: the errors that make one file of a folder unusable (unreadable, corrupt, too large, too
#: small for the layer, ...); anything else still stops the command
FILE_ERRORS = (UsageError, ValueError, OSError, RuntimeError)


@dataclass
class FileOutcome:
    """What became of one input file: the files written and the line to print, or why it was
    skipped.  ``arrays`` carries what a local run logs to TensorBoard (never sent back by a
    cluster run)."""

    index: int
    path: Path
    written: list[Path] = field(default_factory=list)
    message: str = ""
    error: str | None = None
    arrays: Any = None

    @property
    def skipped(self) -> bool:
        return self.error is not None


def add_cluster_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--scheduler`` and ``--workers``."""
    group = parser.add_argument_group("folders on a Dask cluster (pip install 'convscope[dask]')")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"run the {what} as dask tasks on a distributed cluster: 'local' (a LocalCluster "
        "on this machine) or a scheduler address such as tcp://10.0.0.5:8786 (its workers "
        "must see the input and output folders)",
    )
    group.add_argument(
        "--workers",
        type=int,
        help="worker processes of --scheduler local (default: up to 4, one per core)",
    )


def check_cluster_arguments(args: argparse.Namespace, *conflicts: str) -> None:
    """``UsageError`` for --workers without --scheduler local, or --scheduler with one of the
    options named in ``conflicts`` (attribute names) set."""
    if args.workers is not None:
        if args.scheduler != "local":
            raise UsageError("--workers sizes --scheduler local; give --scheduler local too")
        if args.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.scheduler is None:
        return
    if not args.scheduler.strip():
        raise UsageError("--scheduler needs 'local' or a scheduler address")
    for name in conflicts:
        if getattr(args, name, None) not in (None, False):
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} runs on this machine only; leave out --scheduler")


def folder_files(inputs: Iterable[str], lister: Callable[[Path], list[Path]]) -> frozenset[Path]:
    """The files the folders among ``inputs`` contribute (``lister`` lists one folder): the
    ones that are skipped, not fatal, when they cannot be used."""
    found: set[Path] = set()
    for text in inputs:
        if Path(text).is_dir():
            found.update(lister(Path(text)))
    return frozenset(found)


@contextlib.contextmanager
def all_or_nothing(targets: Sequence[Path]) -> Iterator[None]:
    """On an error inside the block, delete the ``targets`` the block wrote (new files, or
    files it replaced), so one input's outputs are complete or absent, never a mix."""
    before = {t: t.stat().st_mtime_ns if t.exists() else None for t in targets}
    try:
        yield
    except BaseException:
        for target, stamp in before.items():
            with contextlib.suppress(OSError):
                if target.exists() and target.stat().st_mtime_ns != stamp:
                    target.unlink()
        raise


def report_skipped(command: str, skipped: Sequence[tuple[Path, str]]) -> int:
    """One line on stderr per skipped file; the exit code: 1 when any was skipped, else 0."""
    for path, error in skipped:
        reason = error if str(path) in error else f"{path}: {error}"
        print(f"convscope {command}: skipped {reason}", file=sys.stderr)
    return 1 if skipped else 0


def worker_count_note(scheduler: str | None, workers: int | None) -> str:
    """How the files run, for the first line of output."""
    if scheduler is None:
        return ""
    if scheduler == "local":
        from ..dask.folders import DEFAULT_LOCAL_WORKERS

        return f" on a local Dask cluster of {workers or DEFAULT_LOCAL_WORKERS} worker processes"
    return f" on the Dask scheduler at {scheduler}"
