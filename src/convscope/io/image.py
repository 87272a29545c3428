"""Images in and out: JPEG, PNG, BMP and TIFF through Pillow, as ``(3, H, W)`` floats in [0, 1].

Grayscale images are repeated into three channels, transparent ones are composited onto white,
16-bit ones are scaled by 65535, and the EXIF orientation of camera photos is applied.  Images
over ``max_pixels`` are refused before their pixels are decoded (Pillow's decompression-bomb
protection, with its limit set to ours).  Every failure is an ``OSError`` (missing, unreadable)
or a ``ValueError`` (corrupt, unsupported, too large) with a one-line message naming the file.

>>> import os, tempfile
>>> import numpy as np
>>> folder = tempfile.TemporaryDirectory()
>>> path = os.path.join(folder.name, "ramp.png")
>>> write_image(path, np.tile(np.linspace(0, 1, 4), (2, 1)))   # (H, W) grayscale
>>> image = read_image(path)
>>> image.shape, image.dtype, (image[0, 0] * 255).round().tolist()
((3, 2, 4), dtype('float32'), [0.0, 85.0, 170.0, 255.0])
>>> try:
...     read_image(os.path.join(folder.name, "missing.png"))
... except FileNotFoundError as error:
...     print(str(error).replace(folder.name, "FOLDER"))
no such file: FOLDER/missing.png
>>> folder.cleanup()
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: the default limit on the pixels of an input image (width x height)
MAX_PIXELS = 50_000_000
#: Pillow format names this module reads (MPO is the JPEG variant some cameras write)
FORMATS = ("JPEG", "MPO", "PNG", "BMP", "TIFF")
#: file name endings of images, and the Pillow format written for each
SUFFIXES = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageInfo(NamedTuple):
    """What the header of an image says: Pillow's format name, height and width."""

    format: str
    height: int
    width: int


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files (by name ending) directly inside ``folder``, sorted by name."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
    )


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"cannot read {path}: permission denied")


@contextmanager
def _opened(path: Path, max_pixels: int | None) -> Iterator[Any]:
    """``PIL.Image.open(path)`` with Pillow's bomb limit set to ``max_pixels`` and its warning
    turned into an error; every failure becomes a one-line ``ValueError`` naming the file."""
    from PIL import Image, UnidentifiedImageError

    _check_readable(path)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(path) as image:
                    if image.format not in FORMATS:
                        raise ValueError(
                            f"{path}: {image.format} images are not supported "
                            "(use JPEG, PNG, BMP or TIFF)"
                        )
                    yield image
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ValueError(
                    f"{path}: image too large: {_header_size(path)} pixels, over the limit of "
                    f"{max_pixels:,} pixels"
                ) from None
            except UnidentifiedImageError:
                raise ValueError(
                    f"{path}: not an image (corrupt, or not JPEG, PNG, BMP or TIFF)"
                ) from None
            except (OSError, SyntaxError, struct.error) as error:
                if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
                    raise
                raise ValueError(f"{path}: corrupt or truncated image ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _header_size(path: Path) -> str:
    """``"W x H"`` from the header alone, Pillow's size limit lifted (nothing is decoded)."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            return f"{image.size[0]} x {image.size[1]}"
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def probe_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> ImageInfo:
    """Check ``path`` is a supported image within ``max_pixels`` from its header alone
    (fast: pixels are not decoded) and return its format and size."""
    with _opened(Path(path), max_pixels) as image:
        width, height = image.size
        return ImageInfo(image.format, height, width)


#: pixels converted to float32 at a time when an image is read (a few MB of temporaries)
READ_BLOCK_PIXELS = 1 << 20


def _to_rgb(image: Any) -> np.ndarray:
    """A loaded Pillow image as ``(H, W, 3)`` float32 in [0, 1]."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        scale = 1.0 if image.mode == "F" else 65535.0
        gray = np.clip(np.asarray(image, dtype=np.float32) / scale, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # onto a white background
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


class ImageRows:
    """An image decoded once and kept as Pillow holds it (1 to 4 bytes a pixel); :meth:`rows`
    gives any band of rows as the ``(3, rows, W)`` float32 values :func:`read_image` gives
    (the conversion is per pixel, so a band equals the same rows of the whole image).

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ramp.png")
    >>> write_image(path, np.tile(np.linspace(0, 1, 4), (5, 1)))
    >>> with ImageRows(path) as image:
    ...     (image.height, image.width), image.rows(1, 3).shape
    ((5, 4), (3, 2, 4))
    >>> folder.cleanup()
    """

    def __init__(self, path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> None:
        from PIL import ImageOps

        path = Path(path)
        with _opened(path, max_pixels) as image:
            try:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # no second copy of the pixels
            except (OSError, SyntaxError, ValueError, struct.error) as error:
                raise ValueError(
                    f"{path}: corrupt or truncated {image.format} image ({error})"
                ) from None
            self._image = image  # loaded: closing the file keeps the pixels
        self.width, self.height = self._image.size

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as ``(3, stop - start, W)`` float32 in [0, 1]."""
        band = self._image.crop((0, start, self.width, stop))
        return np.ascontiguousarray(_to_rgb(band).transpose(2, 0, 1))

    def bands(self, rows: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of consecutive bands of ``rows`` rows covering the image."""
        step = max(1, rows)
        for start in range(0, self.height, step):
            yield start, min(start + step, self.height)

    def close(self) -> None:
        self._image.close()

    def __enter__(self) -> ImageRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as a ``(3, H, W)`` float32 array in [0, 1] (the layout of one
    sample of a ``Conv2d`` input).  The file is only read; the pixels are converted a band of
    rows at a time, so the only full-size array is the result."""
    with ImageRows(path, max_pixels) as image:
        out = np.empty((3, image.height, image.width), np.float32)
        for start, stop in image.bands(READ_BLOCK_PIXELS // max(image.width, 1)):
            out[:, start:stop] = image.rows(start, stop)
    return out


def to_pixels(array: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(3, H, W)`` values in [0, 1] as ``uint8`` pixels ``(H, W)`` or
    ``(H, W, 3)`` (values outside [0, 1] are clipped, NaN becomes 0).  Bands of rows are
    converted in turn, so the float64 temporaries stay small whatever the size.

    >>> to_pixels(np.array([[0.0, 0.5, 1.0, 2.0]])).tolist()
    [[0, 128, 255, 255]]
    """
    values = np.asarray(array)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 3 and values.shape[0] == 3:
        values = values.transpose(1, 2, 0)
    elif values.ndim != 2:
        raise ValueError(f"an image is (H, W) or (3, H, W), got shape {np.shape(array)}")
    out = np.empty(values.shape, np.uint8)
    step = max(1, READ_BLOCK_PIXELS // max(1, values[0].size))
    for start in range(0, values.shape[0], step):
        band = np.array(values[start : start + step], dtype=np.float64)
        np.nan_to_num(band, copy=False, nan=0.0)
        np.clip(band, 0.0, 1.0, out=band)
        band *= 255.0
        np.round(band, out=band)
        out[start : start + step] = band
    return out


def _format_of(path: str | os.PathLike, format: str | None) -> str:
    if format is not None:
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        raise ValueError(f"cannot tell the image format of {path} (use one of {known})")
    return SUFFIXES[suffix]


def write_pixels(path: str | os.PathLike, pixels: np.ndarray, format: str | None = None) -> None:
    """Save ``uint8`` pixels ``(H, W)`` or ``(H, W, 3)`` (e.g. from :func:`to_pixels`) as an
    image; ``format`` as for :func:`write_image`."""
    from PIL import Image

    format = _format_of(path, format)
    # JPEG quality 95; PNG zlib level 3 (level 6 is ~2.5x slower for ~10% fewer bytes)
    options = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 3}}.get(format, {})
    with Image.fromarray(np.asarray(pixels, dtype=np.uint8)) as image:
        image.save(path, format=format, **options)


def write_image(path: str | os.PathLike, array: np.ndarray, format: str | None = None) -> None:
    """Save ``(H, W)`` or ``(3, H, W)`` values in [0, 1] as an 8-bit image.

    ``format`` is a Pillow format name (``"PNG"``, ``"JPEG"``, ``"BMP"``, ``"TIFF"``); by
    default it follows the file name ending.
    """
    format = _format_of(path, format)
    write_pixels(path, to_pixels(array), format)
