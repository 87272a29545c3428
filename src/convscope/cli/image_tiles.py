"""``convscope image HUGE.tif --tile N``: an image larger than memory through the conv layer
with ``convscope.dask``, block by block; each output channel is written as a tiled TIFF
(``<name>_channel_<i>.tif``, i from 0) without the whole result ever being held.

The TIFF is read lazily (only the strips or tiles each block overlaps); the pixels become
[0, 1] values exactly as ``read_image`` makes them, the layer and activation are those of
the ordinary command, and the pixels written are ``to_pixels`` of the same values.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..apps import image as image_app
from ..dask.tiff import read_region
from ..io.image import to_pixels
from .common import UsageError, output_dir, write_atomically

#: side of the TIFF tiles written (a multiple of 16, as TIFF requires)
OUT_TILE = 256
TIFF_SUFFIXES = (".tif", ".tiff")


def add_tile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="process one TIFF larger than memory in N x N blocks with convscope.dask (e.g. "
        "4096) and write each channel as a tiled TIFF; no sheet",
    )


def _unit_rgb(block: np.ndarray) -> np.ndarray:
    """``(h, w, samples)`` TIFF pixels as ``(h, w, 3)`` float32 in [0, 1], as ``read_image``
    converts them (gray replicated, 16-bit and float gray scaled and clipped, alpha over
    white)."""
    samples = block.shape[2]
    if block.dtype == np.uint8:
        values = block.astype(np.float32) / 255.0
        if samples in (2, 4):
            colour = values[..., :-1]
            colour = np.repeat(colour, 3, axis=2) if samples == 2 else colour
            alpha = values[..., -1:]
            return colour * alpha + (1.0 - alpha)
        return np.repeat(values, 3, axis=2) if samples == 1 else values
    scale = 65535.0 if block.dtype == np.uint16 else 1.0
    gray = np.clip(block.astype(np.float32) / scale, 0.0, 1.0)
    return np.repeat(gray, 3, axis=2)


@dataclass(frozen=True)
class PhotoWindows:
    """Windows of a TIFF as the layer's ``(1, C, h, w)`` input: each block's task reads only
    its window (halo included) from the file."""

    path: str
    conv: Any

    def __call__(self, spans: list[tuple[int, int]]) -> np.ndarray:
        rows, cols = spans
        rgb = _unit_rgb(read_region(self.path, rows, cols)).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(image_app.prepare(rgb, self.conv))


def _supported(samples: int, dtype: np.dtype) -> bool:
    if dtype == np.uint8:
        return samples in (1, 2, 3, 4)
    return samples == 1 and dtype in (np.uint16, np.float32)


def _scaled(maps: np.ndarray, activation: str, low: Any, span: Any) -> np.ndarray:
    """``apps.image.activate`` of one block; ``minmax`` with the whole image's range."""
    return image_app.activate(maps, activation, None if low is None else (low, span))


def run_tiled(args: argparse.Namespace) -> int:
    import dask
    import dask.array as da
    from dask.diagnostics import ProgressBar

    from .. import dask as csd
    from ..dask.tiff import RawChannels, tiff_info, write_tiles
    from . import image as image_cli

    for option in ("model", "tensorboard", "scheduler"):
        if getattr(args, option) is not None:
            raise UsageError(f"--tile runs one image on this machine: leave out --{option}")
    if args.tile < 16 or args.tile % 16:
        raise UsageError(f"--tile must be a positive multiple of 16 (e.g. 4096), got {args.tile}")
    activation = image_cli._choice(
        args.activation or "sigmoid", image_app.ACTIVATIONS, "--activation"
    )
    paths = image_cli.collect_inputs(args.inputs)
    if len(paths) != 1 or paths[0].suffix.lower() not in TIFF_SUFFIXES:
        raise UsageError("--tile takes one TIFF image (.tif or .tiff)")
    path = paths[0]
    conv, _, description = image_cli.build_conv(args)
    height, width, samples, dtype = tiff_info(path)
    if not _supported(samples, dtype):
        raise UsageError(f"{path}: {samples}-sample {dtype} TIFF images are not supported")
    try:
        image_app.output_size(conv, height, width)
    except RuntimeError as error:
        raise UsageError(f"{path} ({width}x{height}): {error}") from None
    try:  # the layer's input channels: 3, or the luminance for 1 (else the app's error)
        channels = image_app.prepare(np.zeros((1, 3, 1, 1), np.float32), conv).shape[1]
    except ValueError as error:
        raise UsageError(str(error)) from None
    blocks = tuple(
        tuple(min(args.tile, n - i) for i in range(0, n, args.tile)) for n in (height, width)
    )
    x = csd.Source(
        PhotoWindows(str(path), conv),
        (1, channels, height, width),
        np.dtype(np.float32),
        ((1,), (channels,), *blocks),
    )
    y = csd.apply(conv, x)
    low = span = None
    if activation == "minmax":
        low, high = da.compute(y.min(axis=(0, 2, 3)), y.max(axis=(0, 2, 3)))
        low, span = low[None, :, None, None], (high - low)[None, :, None, None]
    maps = y.map_blocks(_scaled, activation, low, span, dtype=np.float32)
    out_height, out_width = y.shape[2:]
    out = output_dir(args.output)
    targets = [out / f"{path.stem}_channel_{i}.tif" for i in range(y.shape[1])]
    if any(target.resolve() == path.resolve() for target in targets):
        raise UsageError(f"the outputs for {path} would overwrite it")
    print(
        f"{conv!r} ({description}), activation {activation}: {path.name} {width}x{height} in "
        f"{args.tile}x{args.tile} blocks -> {len(targets)} channels {out_width}x{out_height}"
    )
    raw = []
    for target in targets:
        handle, name = tempfile.mkstemp(dir=out, prefix=f".{target.name}.", suffix=".raw")
        os.close(handle)
        raw.append(Path(name))
    store = RawChannels(raw, out_width, to_pixels)
    try:
        progress = ProgressBar(out=sys.stderr) if not args.no_progress else contextlib.nullcontext()
        with dask.config.set(scheduler="threads"), progress:
            da.store(maps, store, lock=False)
        for channel, target in enumerate(targets):
            tiles = store.tiles(channel, out_height, OUT_TILE)
            shape = (out_height, out_width)
            write_atomically(target, lambda tmp, t=tiles, s=shape: write_tiles(tmp, t, s, OUT_TILE))
            print(f"  {target}")
    finally:
        store.close()
        for name in raw:
            name.unlink(missing_ok=True)
    print(f"1 image, {len(targets)} files written to {out}")
    return 0
