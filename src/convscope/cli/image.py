"""``convscope image``: apply a Conv2d to images and save every output channel (seed 001).

The layer is seeded-random (PyTorch's default initialisation), classic filters (``--filters``)
or a conv layer of a checkpoint (``--checkpoint``, ``--layer``).  Every input gives
``<name>_channel_<i>.<ext>`` per output channel (i from 0, as in PyTorch: channel i is
``output[:, i]``) and ``<name>_sheet.png`` with the input and all channels.  With ``--model``
(and ``--weights``, ``--layer``) the maps are the output of one layer of a ``convscope.models``
network on the ImageNet-preprocessed image, caught by a forward hook, saved as
``<name>_<model>.<layer>_channel_<i>.<ext>`` and ``..._sheet.png``.  Inputs are checked
(existence, format, size) before anything is written; every file is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import nn
from ..apps import image as image_app
from ..apps import image_strips
from ..apps.filters import FILTER_INPUTS, FILTERS, channel_names, filter_conv, parse_filters
from ..apps.kernels import conv_layers, load_checkpoint, select_layer
from ..io.image import (
    MAX_PIXELS,
    ImageInfo,
    ImageRows,
    image_files,
    probe_image,
    read_image,
    write_image,
    write_pixels,
)
from ..ops.workspace import get_workspace_budget
from .batch import (
    FILE_ERRORS,
    FileOutcome,
    add_cluster_arguments,
    all_or_nothing,
    check_cluster_arguments,
    folder_files,
    report_skipped,
    worker_count_note,
)
from .common import UsageError, output_dir, write_atomically
from .conv_options import add_conv_arguments, conv_kwargs
from .image_tiles import add_tile_argument

EXAMPLES = """examples:
  convscope image                                  # bundled photo, Conv2d(3, 4, 3, 1, 1), sigmoid
  convscope image cat.jpg -o out/cat               # your own image
  convscope image photos/ --batch-size 16          # every image of a folder, in batches
  convscope image photos/ --scheduler local --workers 2   # the folder as Dask tasks
  convscope image huge.tif --tile 4096             # bigger than memory: convscope.dask
  convscope image --filters sobel-x,sobel-y,laplacian --activation minmax
  convscope image --sheet-scale activation         # the sheet as the files: sigmoid, 0..1 grey
  convscope image --filters all --filter-input each   # each filter on R, G and B separately
  convscope image --checkpoint convscope-output/train/model.cs --layer 0
  convscope image --out-channels 8 --kernel-size 5 --stride 2 --padding 2 --seed 7
  convscope image --tensorboard runs/image         # then: tensorboard --logdir runs
  convscope image cat.jpg --model resnet18 --weights resnet18.pth --layer layer1.0.conv1
  convscope image --model fashion --layer conv1_2   # the bundled trained Fashion-MNIST TinyVGG

outputs (in --output): <name>_channel_<i>.<format> per output channel (i = 0, 1, ...:
channel i is PyTorch's output[:, i]), <name>_sheet.png (input and all channels).  Channel
files are greyscale after --activation (0 black, 1 white); the sheet draws the raw output,
signed maps blue (< 0), white (0), red (> 0) with a colour bar (--sheet-scale).  Filters:
--filters names one output channel per filter applied to the luminance (default), or with
--filter-input each, one per filter and colour (channel c*n + j = filter j on R, G, B).
--model: the 224x224 ImageNet crop goes through the network; files
<name>_<model>.<layer>_channel_<i>.<format> and _sheet.png (first 64 maps).  Memory: an
image whose whole-array run would not fit the budget (CONVSCOPE_WORKSPACE_BYTES, 512 MiB) is
convolved in bands of rows (same pixels; its sheet draws block means).
""" + textwrap.fill("available filters: " + ", ".join(FILTERS), 92)

FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tiff": "TIFF"}
#: the seed-001 layer (--out-channels and --kernel-size are None unless given, so --filters and
#: --checkpoint can tell a deliberate value from the default)
DEFAULT_OUT_CHANNELS, DEFAULT_KERNEL_SIZE = 4, "3"
DEMO_FILTERS = ("sobel-x", "sobel-y", "laplacian", "gaussian", "sharpen", "emboss")
#: what --sheet-scale can draw (see convscope.viz.sheets.feature_sheet)
SHEET_SCALES = ("raw", "per-map", "activation")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(
        name,
        help="apply a Conv2d to images and save every output channel",
        description="Read JPEG/PNG/BMP/TIFF images (a file, several, or a folder; default: the "
        "bundled photo) as (1, 3, H, W) values in [0, 1], apply a Conv2d, squash the output, "
        "and save one image per output channel plus a contact sheet.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    parser.add_argument("-o", "--output", default="convscope-output/image", help="output folder")
    add_conv_arguments(parser, out_channels=DEFAULT_OUT_CHANNELS, kernel_size=DEFAULT_KERNEL_SIZE)
    parser.set_defaults(out_channels=None, kernel_size=None)
    weights = parser.add_argument_group("weights (default: PyTorch's initialisation, seeded)")
    weights.add_argument("--seed", type=int, default=0, help="seed of the random layer (0)")
    weights.add_argument("--filters", help="classic filters, e.g. sobel-x,laplacian or all")
    weights.add_argument(
        "--filter-input",
        default="luminance",
        help="luminance: each filter on the brightness, one channel per filter (default); "
        "each: every filter on R, G and B separately",
    )
    weights.add_argument(
        "--checkpoint",
        help="weights (and bias) of a conv layer of this file; stride, padding, dilation and "
        "groups still come from the options",
    )
    weights.add_argument(
        "--layer",
        help="conv layer of --checkpoint (default: the first); with --model the layer whose "
        "output is shown (a named_modules() name, e.g. layer1.0.conv1)",
    )
    weights.add_argument(
        "--model",
        help="a convscope.models network (e.g. resnet18): show --layer's feature maps on the "
        "ImageNet-preprocessed image (resize 256, centre crop 224, ImageNet mean/std); "
        "fashion: the bundled trained TinyVGG on the 28x28 grayscale image (default: a "
        "bundled Fashion-MNIST test picture; light backgrounds are inverted)",
    )
    weights.add_argument(
        "--weights",
        metavar="FILE",
        help="state dict for --model (torch.save(model.state_dict()), convscope.save, "
        ".safetensors); without it the weights are random",
    )
    parser.add_argument(
        "--activation",
        help="what the channel files hold, as greyscale with 0 black and 1 white: sigmoid "
        "(default; a raw 0 is mid grey 128), none (raw values, clipped to [0, 1] when saved) "
        "or minmax (each map scaled to [0, 1]; the default with --model)",
    )
    parser.add_argument(
        "--sheet-scale",
        default="raw",
        help="what the contact sheet draws: raw (default: the layer's raw output, on a "
        "diverging blue-white-red scale centred on 0 when it has both signs, else grey from "
        "0), per-map (raw, each map grey from its own minimum to maximum) or activation "
        "(the channel files' values after --activation on a fixed 0..1 grey)",
    )
    parser.add_argument(
        "--format", default="png", help="channel images: png (default), jpg, bmp, tiff"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="images per forward pass (8; fewer when they would not fit the memory budget, "
        "CONVSCOPE_WORKSPACE_BYTES, 512 MiB by default: bigger images are then convolved "
        "one at a time in bands of rows)",
    )
    parser.add_argument(
        "--no-sheet", action="store_true", help="skip the contact sheets (faster for big folders)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"refuse images with more pixels ({MAX_PIXELS})",
    )
    parser.add_argument("--tensorboard", metavar="DIR", help="also log for TensorBoard here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cluster_arguments(parser, "batches of a folder")
    add_tile_argument(parser)


def _choice(value: str, choices: Sequence[str], option: str) -> str:
    if value not in choices:
        raise UsageError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def collect_inputs(inputs: Sequence[str]) -> list[Path]:
    """The image files named by ``inputs`` (folders give their images); the bundled photo
    when there are none."""
    if not inputs:
        from ..samples import path

        return [path("photo.jpg")]
    files: list[Path] = []
    for text in inputs:
        item = Path(text)
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise UsageError(f"no JPEG, PNG, BMP or TIFF images in folder {item}")
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return files


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    return {
        option: value
        for option, value in (
            ("--out-channels", args.out_channels),
            ("--kernel-size", args.kernel_size),
            ("--groups", args.groups if args.groups != 1 else None),
        )
        if value is not None
    }


def build_conv(args: argparse.Namespace) -> tuple[nn.Conv2d, list[str] | None, str]:
    """The layer the options ask for, labels for its channels (or None) and a description."""
    if args.layer is not None and args.checkpoint is None:
        raise UsageError("--layer picks a layer of --checkpoint; give --checkpoint too")
    if args.filters is not None and args.checkpoint is not None:
        raise UsageError("choose either --filters or --checkpoint")
    given = _explicit(args)
    if args.out_channels is None:
        args.out_channels = DEFAULT_OUT_CHANNELS
    if args.kernel_size is None:
        args.kernel_size = DEFAULT_KERNEL_SIZE
    options = conv_kwargs(args)
    geometry = {k: options[k] for k in ("stride", "padding", "dilation", "padding_mode")}
    if args.filters is not None:
        mode = _choice(args.filter_input, FILTER_INPUTS, "--filter-input")
        names = parse_filters(args.filters)
        if given:
            raise UsageError(
                f"--filters sets the layer's {', '.join(given)}: leave them out "
                "(filters are 3x3; --stride, --padding, --dilation, --padding-mode still apply)"
            )
        conv = filter_conv(names, 3, mode, **geometry)
        where = "the luminance" if mode == "luminance" else "each colour channel"
        return conv, channel_names(names, 3, mode), f"classic filters on {where}"
    if args.checkpoint is not None:
        if "--out-channels" in given or "--kernel-size" in given:
            raise UsageError("--checkpoint sets --out-channels and --kernel-size: leave them out")
        layer = select_layer(conv_layers(load_checkpoint(args.checkpoint)), args.layer)
        conv = image_app.checkpoint_conv(
            layer, bias=options["bias"], groups=options["groups"], **geometry
        )
        return conv, None, f"layer {layer.name!r} of {args.checkpoint}"
    conv = image_app.random_conv(args.seed, 3, **options)
    return conv, None, f"PyTorch default initialisation, seed {args.seed}"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for path in paths:
        name, k = path.stem, 2
        while name in names:
            name, k = f"{path.stem}_{k}", k + 1
        names.append(name)
    return names


class ImageJob:
    """What to do with every image: the layer, the activation and how to save the results."""

    def __init__(
        self,
        conv: nn.Conv2d,
        *,
        activation: str = "sigmoid",
        format: str = "png",
        channel_titles: Sequence[str] | None = None,
        description: str = "",
        batch_size: int = 8,
        max_pixels: int | None = MAX_PIXELS,
        sheet: bool = True,
        sheet_scale: str = "raw",
    ) -> None:
        self.conv, self.activation, self.format = conv, activation, format
        self.channel_titles, self.description = channel_titles, description
        self.batch_size, self.max_pixels, self.sheet = batch_size, max_pixels, sheet
        self.sheet_scale = sheet_scale

    def outputs(self, out: Path, name: str) -> list[Path]:
        """The files written for the input called ``name``: channels, then the sheet."""
        channels = range(self.conv.out_channels)
        files = [out / f"{name}_channel_{i}.{self.format}" for i in channels]
        return [*files, out / f"{name}_sheet.png"] if self.sheet else files


class _Item(NamedTuple):
    index: int
    path: Path
    name: str
    info: ImageInfo


def check_inputs(
    paths: Sequence[Path],
    out: Path,
    job: ImageJob,
    skip: frozenset[Path] = frozenset(),
    skipped: list[tuple[Path, str]] | None = None,
) -> list[_Item]:
    """Check every input (readable, supported, within the pixel limit, large enough for the
    kernel, not overwritten by an output) before anything is written.  A file of ``skip``
    (found in a folder) that fails is appended to ``skipped`` instead."""
    inputs = {p.resolve() for p in paths}
    items, available = [], image_strips.available_bytes()
    for index, (path, name) in enumerate(zip(paths, _unique_names(paths), strict=True)):
        try:
            info = probe_image(path, job.max_pixels)
            try:
                image_app.output_size(job.conv, info.height, info.width)
            except RuntimeError as error:
                raise UsageError(f"{path} ({info.height} x {info.width}, H x W): {error}") from None
            size, budget = (info.height, info.width), get_workspace_budget()
            need = in_memory_bytes(job, info)
            if need > budget:
                need = image_strips.banded_bytes(job.conv, size, budget)
            _check_memory(path, size, need, available)
        except FILE_ERRORS as error:
            if path not in skip or skipped is None:
                raise
            skipped.append((path, str(error)))
            continue
        if any(target.resolve() in inputs for target in job.outputs(out, name)):
            raise UsageError(f"the outputs for {path} would overwrite an input file")
        items.append(_Item(index, path, name, info))
    return items


def _check_memory(path: Path, size: tuple[int, int], need: int, available: int | None) -> None:
    """``UsageError`` when the image's run would ``need`` more memory than the system has
    left (so the command stops with one line instead of being killed or swapping)."""
    budget = get_workspace_budget()
    if available is not None and need > available:
        raise UsageError(
            f"{path} ({size[0]} x {size[1]}, H x W) needs about {_mib(need)} of memory (the "
            f"decoded image and the memory budget of {_mib(budget)}), more than the "
            f"{_mib(available)} available: lower --max-pixels or CONVSCOPE_WORKSPACE_BYTES"
        )


def _batches(items: Sequence[_Item], size: int) -> Iterator[list[_Item]]:
    """Up to ``size`` images at a time, split further so each batch shares one image size."""
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        for shape in dict.fromkeys((item.info.height, item.info.width) for item in chunk):
            yield [item for item in chunk if (item.info.height, item.info.width) == shape]


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled or total < 2:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="image", leave=False, file=sys.stderr)


def _save_outputs(
    targets: list[Path],
    picture: np.ndarray,
    maps: np.ndarray,
    *,
    title: str,
    format: str,
    activation: str,
    sheet: bool,
    titles: Sequence[str] | None = None,
    sheet_maps: int | None = None,
    raw: np.ndarray | None = None,
    sheet_scale: str = "raw",
    stride: Any = None,
    input_shape: Sequence[int] | None = None,
) -> None:
    """Write one image per channel of ``maps`` to ``targets``, then (``sheet``) the contact
    sheet of ``picture`` and the first ``sheet_maps`` maps (``raw``: the layer's output before
    ``activation``, drawn as ``sheet_scale`` says) to the last target."""
    from ..viz import save_figure
    from ..viz.sheets import feature_sheet

    for target, channel in zip(targets, maps, strict=False):
        write_atomically(target, lambda tmp, c=channel: write_image(tmp, c, format=FORMATS[format]))
    if not sheet:
        return
    figure = feature_sheet(
        picture,
        (maps if raw is None else raw)[:sheet_maps],
        activation=activation,
        activated=maps[:sheet_maps],
        scale=sheet_scale,
        titles=titles,
        title=title,
        stride=stride,
        input_shape=input_shape,
    )
    write_atomically(targets[-1], lambda tmp: save_figure(figure, tmp))


def _log(tensorboard: Any, step: int, picture: np.ndarray, maps: np.ndarray, *stats: float) -> None:
    """Log the input and the maps (``stats``: the maps' mean and standard deviation when
    ``maps`` are block means of the real ones)."""
    tensorboard.add_image("input", picture, step)
    tensorboard.add_feature_maps("feature_maps", maps, step)
    mean, std = stats or (float(maps.mean()), float(maps.std()))
    tensorboard.add_scalar("feature_maps/mean", mean, step)
    tensorboard.add_scalar("feature_maps/std", std, step)


def _mib(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):,.1f} MiB"


def in_memory_bytes(job: ImageJob, info: ImageInfo, count: int = 1) -> int:
    """Bytes ``count`` images of ``info``'s size take when convolved together as whole arrays:
    decoded and float inputs (read, then stacked), raw output, activated maps and their float64
    temporaries, and the contact sheet's float64 copies of one image's maps."""
    out_h, out_w = image_app.output_size(job.conv, info.height, info.width)
    pixels, maps = info.height * info.width, job.conv.out_channels * out_h * out_w
    per_image = pixels * (image_strips.DECODED_BYTES + 3 * 4 * 2 + 4) + maps * (4 + 4 + 16)
    return count * per_image + (maps * 8 * 4 + pixels * 3 * 8 if job.sheet else 0)


def _groups(batch: Sequence[_Item], job: ImageJob) -> Iterator[tuple[list[_Item], bool]]:
    """The batch (one image size) as ``(images, banded)``: as many images at a time as fit the
    workspace budget in memory, or one at a time in bands of rows when one does not fit."""
    budget = get_workspace_budget()
    info = batch[0].info
    count = len(batch)
    while count > 1 and in_memory_bytes(job, info, count) > budget:
        count -= 1
    banded = in_memory_bytes(job, info, 1) > budget
    for start in range(0, len(batch), 1 if banded else count):
        yield list(batch[start : start + (1 if banded else count)]), banded


def _message(item: _Item, shape: Sequence[int], out: Path, job: ImageJob, sheet: Path) -> str:
    channels, height, width = shape
    return (
        f"{item.path.name} ({item.info.height} x {item.info.width}, H x W) -> "
        f"{channels} channels {height} x {width}: "
        f"{out / item.name}_channel_0..{channels - 1}.{job.format}"
        + (f", {sheet.name}" if job.sheet else "")
    )


def _in_memory(
    batch: list[_Item], out: Path, job: ImageJob, skip: frozenset[Path], keep: bool
) -> list[FileOutcome]:
    """Images of one size convolved as one batch, every array whole."""
    outcomes, ready = [], []
    for item in batch:
        try:
            ready.append((item, read_image(item.path, job.max_pixels)))
        except FILE_ERRORS as error:
            if item.path not in skip:
                raise
            outcomes.append(FileOutcome(item.index, item.path, error=str(error)))
    if ready:
        pictures = np.stack([picture for _, picture in ready])
        all_raw = image_app.feature_maps(pictures, job.conv, activation="none")
    for (item, picture), raw in zip(ready, all_raw if ready else [], strict=True):
        maps = image_app.activate(raw, job.activation)
        targets = job.outputs(out, item.name)
        try:
            with all_or_nothing(targets):
                _save_outputs(
                    targets,
                    picture,
                    maps,
                    title=f"{item.path.name} -> {job.conv!r}\n{job.description}",
                    format=job.format,
                    activation=job.activation,
                    sheet=job.sheet,
                    titles=job.channel_titles,
                    raw=raw,
                    sheet_scale=job.sheet_scale,
                    stride=job.conv.stride,
                )
        except FILE_ERRORS as error:
            if item.path not in skip:
                raise
            outcomes.append(FileOutcome(item.index, item.path, error=str(error)))
            continue
        message = _message(item, maps.shape, out, job, targets[-1])
        arrays = (picture, maps) if keep else None
        outcomes.append(FileOutcome(item.index, item.path, targets, message, arrays=arrays))
    return outcomes


def _banded_sheet(target: Path, run: image_strips.BandedConv, item: _Item, job: ImageJob) -> None:
    """The contact sheet of a banded run.  Maps the sheet would average for display come as
    block means (the same averaging); the header then gives the true sizes and each panel the
    full map's value range."""
    from ..viz import save_figure
    from ..viz.sheets import feature_sheet, hw, size_note

    maps, size = run.sheet, (item.info.height, item.info.width)
    title = f"{item.path.name} -> {job.conv!r}\n{job.description}"
    whole = maps.raw.shape[-2:] == run.out_size and maps.picture.shape[-2:] == size
    options: dict[str, Any] = {"stride": job.conv.stride}
    if not whole:
        note = (
            size_note(size, run.out_size, job.conv.stride) or f"output {hw(run.out_size)} (H x W)"
        )
        title += (
            f"\n{note}; maps drawn as means of {maps.factor} x {maps.factor} blocks (colours "
            "of the means, value ranges of the full maps)"
        )
        options = {
            "input_shape": maps.raw.shape[-2:],  # the sizes are in the title
            "input_label": f"input {hw(size)} (H x W)",
            "ranges": run.shown_ranges(job.sheet_scale),  # the full maps', not the means'
        }
    figure = feature_sheet(
        maps.picture,
        maps.raw,
        activated=maps.activated,
        activation=job.activation,
        scale=job.sheet_scale,
        titles=job.channel_titles,
        title=title,
        **options,
    )
    write_atomically(target, lambda tmp: save_figure(figure, tmp))


def _banded(
    item: _Item, out: Path, job: ImageJob, skip: frozenset[Path], keep: bool
) -> FileOutcome:
    """One image too big to convolve whole: bands of rows, one block of channels at a time."""
    targets = job.outputs(out, item.name)
    want_activated = keep or (job.sheet and job.sheet_scale == "activation")
    try:
        with ImageRows(item.path, job.max_pixels) as image, all_or_nothing(targets):
            budget = get_workspace_budget()
            run = image_strips.BandedConv(
                job.conv, image, job.activation, budget, want_activated, job.sheet or keep
            )
            if run.means_bytes > budget // 4:
                raise UsageError(
                    f"{item.path}: the contact sheet's {job.conv.out_channels} maps need at "
                    f"least {_mib(run.means_bytes)}, over a quarter of the memory budget of "
                    f"{_mib(budget)}: use --no-sheet (and no --tensorboard), or raise "
                    "CONVSCOPE_WORKSPACE_BYTES (bytes)"
                )
            for channel, pixels in run.pictures():
                write_atomically(
                    targets[channel],
                    lambda tmp, p=pixels: write_pixels(tmp, p, format=FORMATS[job.format]),
                )
            if job.sheet:
                _banded_sheet(targets[-1], run, item, job)
    except FILE_ERRORS as error:
        if item.path not in skip:
            raise
        return FileOutcome(item.index, item.path, error=str(error))
    maps = run.sheet
    arrays = (maps.picture, maps.activated, maps.mean, maps.std) if keep else None
    message = _message(item, run.shape, out, job, targets[-1])
    return FileOutcome(item.index, item.path, targets, message, arrays=arrays)


def image_batch(
    task: tuple[list[_Item], Path, ImageJob, frozenset[Path], bool],
) -> list[FileOutcome]:
    """One batch of images (a dask task with ``--scheduler``): read, convolve, write every
    channel and the sheet.  Images are convolved together as whole arrays while that fits
    the workspace budget, else one at a time in bands of rows (:mod:`..apps.image_strips`).
    A file of ``skip`` that cannot be read or written becomes a skipped outcome, its outputs
    complete or absent; ``keep`` returns the arrays too."""
    batch, out, job, skip, keep = task
    outcomes: list[FileOutcome] = []
    for group, banded in _groups(batch, job):
        if banded:
            outcomes.append(_banded(group[0], out, job, skip, keep))
        else:
            outcomes.extend(_in_memory(group, out, job, skip, keep))
    return sorted(outcomes, key=lambda outcome: outcome.index)


def process(
    paths: Sequence[Path],
    out: Path,
    job: ImageJob,
    *,
    tensorboard: Any = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    skip: frozenset[Path] = frozenset(),
    skipped: list[tuple[Path, str]] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Run ``job`` on the images ``paths``, writing into the existing folder ``out`` (and
    logging to a :class:`~convscope.apps.tensorboard.TensorBoardLogger`, step = input index);
    returns the files written.  Every input is checked before the first file is written.
    Files of ``skip`` (found in folders) that cannot be used are appended to ``skipped``
    (path, reason) and the others still processed.  With ``scheduler`` (``"local"`` or an
    address) the batches run as dask tasks on a distributed cluster."""
    from ..dask.folders import run_tasks

    skipped = [] if skipped is None else skipped
    items = check_inputs(paths, out, job, skip, skipped)
    written: list[Path] = []
    bar = _progress_bar(len(items), progress)
    say = bar.write if bar is not None else echo

    def done(outcomes: list[FileOutcome]) -> None:
        for outcome in outcomes:
            if outcome.skipped:
                skipped.append((outcome.path, outcome.error))
            else:
                written.extend(outcome.written)
                if tensorboard is not None:
                    _log(tensorboard, outcome.index, *outcome.arrays)
                say(outcome.message)
            if bar is not None:
                bar.update()

    keep = tensorboard is not None
    tasks = [(batch, out, job, skip, keep) for batch in _batches(items, job.batch_size)]
    try:
        run_tasks(tasks, image_batch, scheduler=scheduler, workers=workers, done=done)
    finally:
        if bar is not None:
            bar.close()
    return written


#: feature maps drawn on a contact sheet with --model (every channel still gets its own file)
SHEET_MAPS = 64


def _model_options_conflict(args: argparse.Namespace) -> None:
    """``UsageError`` when options of the single-layer modes come with ``--model``."""
    if args.checkpoint is not None or args.filters is not None:
        raise UsageError("--model replaces --checkpoint and --filters: give only one of them")
    defaults = {
        "--stride": "1",
        "--padding": "1",
        "--dilation": "1",
        "--padding-mode": "zeros",
        "--no-bias": False,
        "--seed": 0,
        "--filter-input": "luminance",
    }
    changed = list(_explicit(args)) + [
        option
        for option, default in defaults.items()
        if getattr(args, option.lstrip("-").replace("-", "_")) != default
    ]
    if changed:
        raise UsageError(
            f"{', '.join(changed)} describe a single conv layer; --model uses its own layers"
        )


def _model_tag(model: str, layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}.{layer}")


def _check_model_outputs(paths: Sequence[Path], names: Sequence[str], out: Path, tag: str) -> None:
    """``UsageError`` when an input file has the name of one of the outputs."""
    folder = out.resolve()
    for path in paths:
        real = path.resolve()
        if real.parent != folder:
            continue
        for name in names:
            pattern = rf"{re.escape(name)}_{re.escape(tag)}_(channel_\d+\.\w+|sheet\.png)"
            if re.fullmatch(pattern, real.name):
                raise UsageError(f"the outputs for {name} would overwrite the input file {path}")


def model_chunk(network: Any, model: str, layer: str, batch_size: int) -> int:
    """Images per forward pass of ``--model`` (at most ``batch_size``) whose activations fit
    the workspace budget, estimated from one image's pass on zeros: a few of the largest
    layer outputs alive at once, the caught layer's output twice (the hook's copy and the
    activated maps), and the sheet's float64 copies of one image's maps.  ``UsageError``
    when not even one image fits."""
    from ..apps import classify
    from ..explain.summary import summary

    shape = (1, 28, 28) if network.inputs == classify.FASHION else (3, 224, 224)
    rows = summary(network.model, (1, *shape)).rows
    largest = max(row.output_bytes for row in rows if row.is_leaf)
    caught = max(row.output_bytes for row in rows if row.name == layer)
    per_image = 4 * largest + 2 * caught
    fixed = 4 * 2 * caught
    budget = get_workspace_budget()
    if per_image + fixed > budget:
        raise UsageError(
            f"--model {model} --layer {layer}: one image needs about "
            f"{_mib(per_image + fixed)} for the network's activations, over the memory budget "
            f"of {_mib(budget)}; raise it "
            "with the environment variable CONVSCOPE_WORKSPACE_BYTES (bytes)"
        )
    return max(1, min(batch_size, (budget - fixed) // per_image))


def _layer_maps(
    network: Any, layer: str, inputs: Iterator[np.ndarray], count: int, batch_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, shown picture in [0, 1], raw (C, H, W) maps of layer)`` for each of the
    ``count`` preprocessed ``inputs``, ``batch_size`` images per forward pass."""
    from ..apps import classify

    for start in range(0, count, batch_size):
        chunk = range(start, min(start + batch_size, count))
        batch = np.stack([next(inputs) for _ in chunk])
        raw = image_app.model_feature_maps(network.model, layer, batch)
        if raw.ndim != 4:
            raise UsageError(
                f"layer {layer!r} gives {raw.shape[1:]} per image, not (C, H, W) feature maps: "
                "choose a conv, norm, activation, pooling or block layer"
            )
        yield from zip(chunk, classify.shown_inputs(network, batch), raw, strict=True)


def _run_model(args: argparse.Namespace) -> int:
    """``--model``: the feature maps of one layer of a network, saved like a conv layer's."""
    from ..apps import classify
    from .classify import random_weights_note

    if args.layer is None:
        raise UsageError("--model needs --layer, e.g. --layer layer1.0.conv1")
    _model_options_conflict(args)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    activation = _choice(args.activation or "minmax", image_app.ACTIVATIONS, "--activation")
    sheet_scale = _choice(args.sheet_scale, SHEET_SCALES, "--sheet-scale")
    fmt = _choice(args.format.lower().removeprefix("."), tuple(FORMATS), "--format")
    if args.model == classify.FASHION and not args.inputs:
        from ..apps.fashion import default_sample

        paths = [default_sample()]  # a Fashion-MNIST test picture, not the photo
    else:
        paths = collect_inputs(args.inputs)
    available = image_strips.available_bytes()
    for path in paths:
        info = probe_image(path, args.max_pixels)
        decoded = 2 * image_strips.DECODED_BYTES * info.height * info.width  # read, RGB copy
        _check_memory(path, (info.height, info.width), decoded + get_workspace_budget(), available)
    network = classify.load_model(args.model, args.weights)
    module = classify.find_layer(network.model, args.layer, args.model)
    names, tag = _unique_names(paths), _model_tag(args.model, args.layer)
    _check_model_outputs(paths, names, Path(args.output), tag)
    what, sheet = f"{args.model}.{args.layer} ({type(module).__name__})", not args.no_sheet
    inputs = (classify.prepare_inputs(network, [p], args.max_pixels)[0] for p in paths)
    # the first image is decoded before the network first runs (for the estimate), so the
    # decoding's peak does not add to the memory that first pass leaves behind
    inputs = itertools.chain([next(inputs)], inputs)
    chunk = model_chunk(network, args.model, args.layer, args.batch_size)
    maps_of = _layer_maps(network, args.layer, inputs, len(paths), chunk)
    with ExitStack() as stack:
        first = next(maps_of)  # a layer without (C, H, W) maps fails before anything is made
        if network.random:  # after every check: a refused command prints one line only
            random_weights_note("image", "so are the maps")
        logger = None
        if args.tensorboard:
            from ..apps.tensorboard import open_logger

            logger = stack.enter_context(open_logger(output_dir(args.tensorboard)))
        out = output_dir(args.output)
        bar = _progress_bar(len(paths), not args.no_progress)
        if bar is not None:
            stack.callback(bar.close)
        say = bar.write if bar is not None else print
        count = 0
        for i, picture, raw in itertools.chain([first], maps_of):
            maps = image_app.activate(raw, activation)
            stem = f"{names[i]}_{tag}"
            targets = [out / f"{stem}_channel_{c}.{fmt}" for c in range(len(maps))]
            targets += [out / f"{stem}_sheet.png"] if sheet else []
            shown = "" if len(maps) <= SHEET_MAPS else f" (sheet: first {SHEET_MAPS})"
            _save_outputs(
                targets,
                picture,
                maps,
                title=f"{paths[i].name} ({classify.input_description(network)}) -> {what}\n"
                f"output {tuple(raw.shape)} (C, H, W){shown}",
                format=fmt,
                activation=activation,
                sheet=sheet,
                sheet_maps=SHEET_MAPS,
                raw=raw,
                sheet_scale=sheet_scale,
                input_shape=picture.shape[-2:],
            )
            count += len(targets)
            if logger is not None:
                _log(logger, i, picture, maps)
            say(
                f"{paths[i].name} -> {what} output {tuple(raw.shape)}: "
                f"{out / stem}_channel_0..{len(maps) - 1}.{fmt}"
                + (f", {targets[-1].name}" if sheet else "")
            )
            if bar is not None:
                bar.update()
    print(f"{len(paths)} image(s), {count} files written to {out}")
    if args.tensorboard:
        from ..apps.tensorboard import viewer_hint

        print(viewer_hint(args.tensorboard))
    return 0


def run(args: argparse.Namespace) -> int:
    check_cluster_arguments(args, "model", "tensorboard")
    if args.tile is not None:
        from .image_tiles import run_tiled

        return run_tiled(args)
    if args.model is not None:
        return _run_model(args)
    if args.weights is not None:
        raise UsageError("--weights goes with --model")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    activation = _choice(args.activation or "sigmoid", image_app.ACTIVATIONS, "--activation")
    sheet_scale = _choice(args.sheet_scale, SHEET_SCALES, "--sheet-scale")
    fmt = _choice(args.format.lower().removeprefix("."), tuple(FORMATS), "--format")
    conv, titles, description = build_conv(args)
    paths = collect_inputs(args.inputs)
    skip, skipped = folder_files(args.inputs, image_files), []
    job = ImageJob(
        conv,
        activation=activation,
        format=fmt,
        channel_titles=titles,
        description=description,
        batch_size=args.batch_size,
        max_pixels=args.max_pixels,
        sheet=not args.no_sheet,
        sheet_scale=sheet_scale,
    )
    check_inputs(paths, Path(args.output), job, skip, [])  # before anything is created
    with ExitStack() as stack:
        logger = None
        if args.tensorboard:
            from ..apps.tensorboard import open_logger, viewer_hint

            logger = stack.enter_context(open_logger(output_dir(args.tensorboard)))
        out = output_dir(args.output)
        where = worker_count_note(args.scheduler, args.workers)
        print(f"{conv!r} ({description}), activation {activation}{where}")
        written = process(
            paths,
            out,
            job,
            tensorboard=logger,
            progress=not args.no_progress,
            skip=skip,
            skipped=skipped,
            scheduler=args.scheduler,
            workers=args.workers,
        )
    print(f"{len(paths) - len(skipped)} image(s), {len(written)} files written to {out}")
    if args.tensorboard:
        print(viewer_hint(args.tensorboard))
    return report_skipped("image", skipped)


def demo(folder: Path) -> None:
    """The seed-001 layer and six classic filters on the bundled photo, into ``folder``."""
    from ..samples import path

    photo = path("photo.jpg")
    runs = (
        ("seed001", image_app.random_conv(0), None, "PyTorch default initialisation, seed 0"),
        (
            "filters",
            filter_conv(DEMO_FILTERS, padding_mode="replicate"),
            list(DEMO_FILTERS),
            "classic filters on the luminance",
        ),
    )
    for sub, conv, titles, description in runs:
        out = output_dir(folder / sub)
        job = ImageJob(conv, channel_titles=titles, description=description)
        process([photo], out, job, progress=False, echo=lambda _: None)
        last = conv.out_channels - 1
        print(f"{description}: {conv!r}")
        print(f"  -> {out}/photo_sheet.png, photo_channel_0..{last}.png")
