"""TIFF images bigger than memory: read lazily as a dask array (each block decodes only the
strips or tiles it overlaps, any compression tifffile decodes), and written one band of tiles
at a time from raw per-channel files.

>>> import tempfile, numpy as np, tifffile
>>> folder = tempfile.mkdtemp()
>>> picture = np.arange(40 * 50 * 3, dtype=np.uint32).reshape(40, 50, 3).astype(np.uint8)
>>> tifffile.imwrite(f"{folder}/a.tif", picture, tile=(16, 16), compression="zlib")
>>> lazy = read_tiff(f"{folder}/a.tif", chunk=24)
>>> lazy.shape, lazy.chunks[:2]
((40, 50, 3), ((24, 16), (24, 24, 2)))
>>> bool((lazy.compute() == picture).all())
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _page(tif: Any) -> Any:
    page = tif.pages.first
    if page.imagedepth != 1 or (page.planarconfig != 1 and page.samplesperpixel > 1):
        raise ValueError(
            f"{tif.filehandle.path}: only 2-D TIFF images with interleaved samples can be read "
            "block by block"
        )
    return page


def tiff_info(path: str | os.PathLike) -> tuple[int, int, int, np.dtype]:
    """Height, width, samples per pixel and dtype of the first image of a TIFF file
    (``ValueError`` when it is not one tifffile can read)."""
    import tifffile

    quiet = logging.getLogger("tifffile")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warnings about broken files: the error says it all
    try:
        with tifffile.TiffFile(path) as tif:
            page = _page(tif)
            return page.imagelength, page.imagewidth, page.samplesperpixel, np.dtype(page.dtype)
    except (tifffile.TiffFileError, ValueError, TypeError, IndexError, KeyError) as error:
        reason = str(error) or type(error).__name__
        raise ValueError(f"{path}: not a readable TIFF image ({reason})") from None
    finally:
        quiet.setLevel(level)


def read_region(path: str, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Pixels ``[r0:r1, c0:c1]`` (with a samples axis) of the first image, decoding only the
    strips or tiles that overlap them."""
    import tifffile

    (r0, r1), (c0, c1) = rows, cols
    with tifffile.TiffFile(path) as tif:
        page = _page(tif)
        out = np.zeros((r1 - r0, c1 - c0, page.samplesperpixel), np.dtype(page.dtype))
        if page.is_tiled:
            height, width = page.tilelength, page.tilewidth
        else:
            height, width = page.rowsperstrip, page.imagewidth
        across = -(-page.imagewidth // width)
        handle = tif.filehandle
        for index, (offset, count) in enumerate(
            zip(page.dataoffsets, page.databytecounts, strict=True)
        ):
            top, left = (index // across) * height, (index % across) * width
            if top >= r1 or top + height <= r0 or left >= c1 or left + width <= c0:
                continue
            handle.seek(offset)
            data = handle.read(count) if count else None
            segment, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
            if segment is None:
                continue
            segment = np.asarray(segment).reshape(shape)[0]  # (rows, cols, samples)
            y0, y1 = max(top, r0), min(top + segment.shape[0], r1, page.imagelength)
            x0, x1 = max(left, c0), min(left + segment.shape[1], c1, page.imagewidth)
            if y1 > y0 and x1 > x0:
                out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = segment[
                    y0 - top : y1 - top, x0 - left : x1 - left
                ]
        return out


def read_tiff(path: str | os.PathLike, chunk: int) -> Any:
    """The first image of a TIFF file as a lazy ``(H, W, samples)`` dask array in blocks of
    ``chunk`` x ``chunk`` pixels."""
    import dask.array as da
    from dask import delayed

    height, width, samples, dtype = tiff_info(path)
    rows = [(r, min(r + chunk, height)) for r in range(0, height, chunk)]
    cols = [(c, min(c + chunk, width)) for c in range(0, width, chunk)]
    blocks = [
        [
            [
                da.from_delayed(
                    delayed(read_region, pure=True)(str(path), r, c),
                    (r[1] - r[0], c[1] - c[0], samples),
                    dtype,
                )
            ]
            for c in cols
        ]
        for r in rows
    ]
    return da.block(blocks)  # one nesting level per axis (the samples axis is one block)


class RawChannels:
    """A ``dask.array.store`` target for ``(1, C, H, W)`` maps: each channel's pixels
    (``to_pixels`` of the block, uint8) written into its own raw file at their place, block by
    block, so no more than a block is ever held."""

    def __init__(self, paths: list[Path], width: int, to_pixels: Any) -> None:
        self.paths, self.width, self.to_pixels = paths, width, to_pixels
        self.handles = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for p in paths]

    def __setitem__(self, key: tuple, block: np.ndarray) -> None:
        rows, cols = key[2], key[3]
        for channel, handle in enumerate(self.handles[key[1].start or 0 :]):
            if channel >= block.shape[1]:
                break
            pixels = self.to_pixels(block[0, channel])
            for i, row in enumerate(pixels):
                os.pwrite(handle, row.tobytes(), (rows.start + i) * self.width + cols.start)

    def close(self) -> None:
        for handle in self.handles:
            os.close(handle)

    def tiles(self, channel: int, height: int, tile: int) -> Iterator[np.ndarray]:
        """Channel ``channel`` as ``tile`` x ``tile`` uint8 tiles in TIFF order (row-major,
        edge tiles zero-padded), read one band of rows at a time."""
        handle = self.handles[channel]
        for top in range(0, height, tile):
            rows = min(tile, height - top)
            band = np.frombuffer(os.pread(handle, rows * self.width, top * self.width), np.uint8)
            band = band.reshape(rows, self.width)
            for left in range(0, self.width, tile):
                piece = np.zeros((tile, tile), np.uint8)
                part = band[:, left : left + tile]
                piece[: part.shape[0], : part.shape[1]] = part
                yield piece


def write_tiles(path: str, tiles: Iterator[np.ndarray], shape: tuple[int, int], tile: int) -> None:
    """A tiled uint8 TIFF (BigTIFF when over 2 GB) from row-major tiles."""
    import tifffile

    big = shape[0] * shape[1] > 2**31
    tifffile.imwrite(
        path,
        tiles,
        shape=shape,
        dtype=np.uint8,
        tile=(tile, tile),
        bigtiff=big,
        photometric="minisblack",
    )
