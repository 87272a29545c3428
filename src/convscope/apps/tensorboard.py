"""Log inputs, feature maps and scalars for TensorBoard through tensorboardX (no TensorFlow,
no torch).

Feature maps are shown properly: every channel becomes its own grayscale image
``<tag>/channel_<i>`` (i from 0, the channel's index) and all channels together one tiled grid
``<tag>/grid`` - never a reshape of C channels into 3 colour planes.  For display, each channel
image is stretched to its own minimum (black) and maximum (white), the grid to the minimum and
maximum of all channels (so the grid compares channels).  Images given to ``add_image`` that
already lie in ``[0, 1]`` are logged as they are, others are min-max scaled.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as logdir:
...     with open_logger(logdir) as tb:
...         tb.add_image("input", np.random.rand(3, 16, 16))
...         tb.add_feature_maps("conv1", np.random.randn(4, 16, 16))
...         tb.add_scalar("loss", 0.5, step=1)
...     [p.name.startswith("events.out.tfevents") for p in Path(logdir).iterdir()]
[True]
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..viz.grids import tile, to_unit_range

INSTALL_HINT = 'pip install "convscope[tensorboard]"'


def viewer_hint(folder: str) -> str:
    """How to look at the logs: TensorBoard's viewer is a separate package from the writer.

    >>> print(viewer_hint("runs/x").split(": ", 1)[1])
    view them with `tensorboard --logdir runs/x` (the viewer: pip install tensorboard)
    """
    return (
        f"TensorBoard logs in {folder}: view them with `tensorboard --logdir {folder}` "
        "(the viewer: pip install tensorboard)"
    )


class TensorBoardUnavailable(RuntimeError):
    """tensorboardX is not installed (a ``RuntimeError``: the command line reports it in one
    line with exit code 2)."""


def _summary_writer_class() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError as error:
        raise TensorBoardUnavailable(
            f"--tensorboard needs tensorboardX, which is not installed: {INSTALL_HINT}"
        ) from error
    return SummaryWriter


def _image_planes(image: np.ndarray) -> tuple[np.ndarray, str]:
    """An image as ``(H, W)`` or ``(3, H, W)`` floats and tensorboardX's ``dataformats``."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        return array, "HW"
    if array.ndim == 3 and array.shape[0] == 3:
        return array, "CHW"
    raise ValueError(
        f"add_image expects an (H, W) or (3, H, W) image, got shape {tuple(np.shape(image))}"
    )


def _channel_stack(maps: np.ndarray) -> np.ndarray:
    array = np.asarray(maps, dtype=np.float64)
    if array.ndim == 4 and array.shape[0] == 1:  # a batch of one: (1, C, H, W)
        array = array[0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] < 1:
        raise ValueError(
            f"add_feature_maps expects (C, H, W) maps, got shape {tuple(np.shape(maps))}"
        )
    return array


class TensorBoardLogger:
    """A tensorboardX ``SummaryWriter`` writing into ``logdir``, with feature-map logging.

    Use it as a context manager (or call :meth:`close`) so the event file is flushed.
    """

    def __init__(self, logdir: str | os.PathLike) -> None:
        writer_class = _summary_writer_class()
        self.logdir = Path(logdir)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = writer_class(logdir=str(self.logdir), flush_secs=10)
        except OSError as error:
            reason = error.strerror or str(error)
            raise OSError(f"cannot write TensorBoard logs into {self.logdir}: {reason}") from None

    def add_image(self, tag: str, image: np.ndarray, step: int = 0) -> None:
        """Log an ``(H, W)`` or ``(3, H, W)`` float image, scaled for display."""
        planes, formats = _image_planes(image)
        self._writer.add_image(tag, to_unit_range(planes), step, dataformats=formats)

    def add_feature_maps(self, tag: str, maps: np.ndarray, step: int = 0) -> None:
        """Log ``(C, H, W)`` maps as ``<tag>/channel_<i>`` images and one ``<tag>/grid``."""
        stack = _channel_stack(maps)
        for index, channel in enumerate(stack):
            self._writer.add_image(
                f"{tag}/channel_{index}", to_unit_range(channel, False), step, dataformats="HW"
            )
        grid = tile(to_unit_range(stack, False), gap=2, fill=1.0)
        self._writer.add_image(f"{tag}/grid", grid, step, dataformats="HW")

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Log one value of the curve ``tag`` at ``step``."""
        self._writer.add_scalar(tag, float(value), step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (safe to call twice)."""
        self._writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_logger(logdir: str | os.PathLike) -> TensorBoardLogger:
    """A :class:`TensorBoardLogger` for ``logdir``; :class:`TensorBoardUnavailable` (a
    ``RuntimeError`` naming ``pip install "convscope[tensorboard]"``) if tensorboardX is
    missing, ``OSError`` with a one-line message if the folder cannot be written."""
    return TensorBoardLogger(logdir)
