"""Output files that appear all together or not at all, for commands that write several files
at once (a video per channel, encoded frame by frame) or one after another.

Inside ``with staged_outputs(folder) as stage``, ``stage.path(name)`` is a hidden temporary file
in ``folder`` to write ``name`` to.  When the block ends normally every file is moved to its
name; when it raises, the temporaries are deleted, and so is every folder the block created
(the output folder and any parents made for it), so a failed command leaves nothing behind.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as tmp:
...     with staged_outputs(Path(tmp) / "a" / "b") as stage:
...         _ = stage.path("x.txt").write_text("done")
...     try:
...         with staged_outputs(Path(tmp) / "c" / "d") as stage:
...             _ = stage.path("y.txt").write_text("half")
...             raise ValueError("no")
...     except ValueError:
...         pass
...     sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*"))
['a', 'a/b', 'a/b/x.txt']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .common import output_dir


class Stage:
    """Temporary files in an output folder, each to be renamed to its final name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        """A new hidden temporary file in the folder, moved to ``name`` at the end."""
        if name in self.files:
            raise ValueError(f"{name} is written twice")
        handle, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".part")
        os.close(handle)
        self.files[name] = Path(temp)
        return self.files[name]

    def commit(self) -> None:
        """Give the files the permissions a plain ``open()`` would and move them into place."""
        umask = os.umask(0)
        os.umask(umask)
        for name, temp in self.files.items():
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, self.folder / name)

    def discard(self) -> None:
        for temp in self.files.values():
            temp.unlink(missing_ok=True)


def _created_by(folder: Path, within: Path | None) -> list[Path]:
    """The folders that creating ``folder`` would make (below ``within``), deepest first."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists() or path == within:
            break
        missing.append(path)
    return missing


@contextlib.contextmanager
def created_folders_removed(
    folder: str | os.PathLike, *, within: str | os.PathLike | None = None, always: bool = False
) -> Iterator[None]:
    """On an error inside the block (or ``always``, at its end), remove the folders that did
    not exist before it and are empty: ``folder`` and the parents made for it, up to (not
    including) ``within``."""
    top = None if within is None else Path(within).absolute()
    missing = _created_by(Path(folder).absolute(), top)
    failed = True
    try:
        yield
        failed = False
    finally:
        if failed or always:
            for path in missing:
                with contextlib.suppress(OSError):  # not empty, or never created: keep it
                    path.rmdir()


@contextlib.contextmanager
def staged_outputs(
    folder: str | os.PathLike, *, within: str | os.PathLike | None = None
) -> Iterator[Stage]:
    """Create ``folder`` (``UsageError`` if it cannot be) and stage files in it (see above);
    on failure, folders are removed up to ``within`` (a folder others may be writing to)."""
    with created_folders_removed(folder, within=within):
        stage = Stage(output_dir(folder))
        try:
            yield stage
        except BaseException:
            stage.discard()
            raise
        stage.commit()
