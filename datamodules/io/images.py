"""Reading and writing greyscale radiographs as float32 arrays in [0, 1], bright = dense.

Formats: PNG (8/16-bit), JPEG (8-bit), TIFF (8/16-bit integer or float; :mod:`datamodules.io.tiff`)
and DICOM (:mod:`datamodules.io.dicom`, also without a file extension: recognised by ``DICM`` at byte
128). Every image read here carries an :class:`~datamodules.io.pixels.ImageInfo` that says how it was
stored, so a result is written back in the same format, bit depth and polarity.

Bit depth: integer data of ``b`` significant bits is divided by ``2**b - 1``. ``bit_depth="auto"``
takes ``b`` from the file (PNG ``sBIT``, TIFF ``SMaxSampleValue``/``MaxSampleValue``/``BitsPerSample``,
DICOM ``BitsStored``), else the container (8 or 16). A 16-bit PNG without ``sBIT`` that holds 12-bit
values is read as 16-bit (dark): nothing in the file says otherwise, so the user states
``bit_depth=12``. A result is written at the bit depth it was read with (12-bit values in a 16-bit
file, with ``sBIT``/``MaxSampleValue`` set).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from datamodules.io.atomic import atomic_write
from datamodules.io.pixels import (
    BitDepth,
    ImageInfo,
    ImageReadError,
    container_bits,
    grey_channel,
    scale_integers,
    to_stored,
)

PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES


def check_bit_depth(value: object, key: str = "bit_depth") -> BitDepth:
    """``"auto"`` (also for ``None``) or a whole number of bits 1..16; a ``ValueError`` naming ``key`` else."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16:
        return value
    raise ValueError(f"{key}={value!r} is not a bit depth; use auto or a whole number 1..16 (e.g. {key}=12)")


_stated: list[BitDepth] = ["auto"]  # what read_image(path) uses when no bit_depth is passed


@contextmanager
def stated_bit_depth(value: object, key: str = "bit_depth") -> Iterator[BitDepth]:
    """Within the block, ``read_image(path)`` without a ``bit_depth`` reads with ``value`` (a script's
    ``bit_depth=`` setting reaching every reader it calls); checked first, naming ``key``."""
    depth = check_bit_depth(value, key)
    _stated.append(depth)
    try:
        yield depth
    finally:
        _stated.pop()


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a DICOM file: a ``.dcm``/``.dicom`` name, or ``DICM`` at byte 128 (``IM0001``)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_image_file(path: str | os.PathLike) -> bool:
    """An image by its suffix, or a DICOM by its preamble whatever its name."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_SUFFIXES or is_dicom_file(path)


def png_significant_bits(path: str | os.PathLike) -> int | None:
    """The grey (first) value of a PNG's ``sBIT`` chunk, or ``None`` when there is none."""
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return None
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind in (b"IDAT", b"IEND"):
                return None  # sBIT must come before the image data
            if kind == b"sBIT":
                data = handle.read(length)
                return data[0] if data else None
            handle.seek(length + 4, os.SEEK_CUR)  # data and CRC


def _to_grey_array(image: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    mode = image.mode
    if mode in ("L", "P", "LA", "RGB", "RGBA"):
        if mode == "P":
            image = image.convert("RGB")
            mode = "RGB"
        array = grey_channel(np.asarray(image), path, mode)
        return array.astype(np.uint8, copy=False), 8
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(f"{path}: pixel values outside the 16-bit range")
        return array.astype(np.uint16), 16
    raise ImageReadError(f"{path}: unsupported image mode {mode!r} (need 8- or 16-bit greyscale)")


def read_image(path: str | os.PathLike, bit_depth: BitDepth | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Read a PNG, JPEG, TIFF or DICOM radiograph.

    Args:
        bit_depth: significant bits of integer data (1..16), or ``"auto"``: from the file (module doc);
            ``None``: what the enclosing :func:`stated_bit_depth` says, else ``"auto"``.

    Returns:
        ``(array, info)``: ``array`` is float32 of shape (H, W) in [0, 1] with bright = dense
        (integers divided by ``2**bit_depth - 1``; TIFF and DICOM as their modules say); ``info``
        records how it was stored.

    Raises:
        ImageReadError: the file is missing, truncated, not an image, colour, or its values do not fit
            the stated bit depth.
    """
    path = Path(path)
    bit_depth = _stated[-1] if bit_depth is None else check_bit_depth(bit_depth)
    suffix = path.suffix.lower()
    # the format modules import tifffile/pydicom, loaded only when such a file comes (they never import this one)
    if suffix in TIFF_SUFFIXES:
        from datamodules.io.tiff import read_tiff

        return read_tiff(path, bit_depth)
    if suffix in DICOM_SUFFIXES or (suffix not in PIL_SUFFIXES and is_dicom_file(path)):
        from datamodules.io.dicom import read_dicom

        return read_dicom(path, bit_depth)
    try:
        with Image.open(path) as image:
            image.load()
            raw, container = _to_grey_array(image, path)
        declared = png_significant_bits(path) if suffix == ".png" else None
    except ImageReadError:
        raise
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err
    array, depth = scale_integers(raw, path, container, declared, bit_depth)
    return array, ImageInfo(bit_depth=depth, suffix=suffix)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width), from the header alone for PNG/JPEG; raises :class:`ImageReadError` naming the file."""
    path = Path(path)
    if path.suffix.lower() not in PIL_SUFFIXES:
        return read_image(path)[0].shape
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err
    return height, width


# zlib level of written PNGs (lossless at every level): level 1 writes about 3x faster than PIL's default 6
# for files about 10 % larger (measured in docs/data.md).
PNG_COMPRESS_LEVEL = 1


def write_image(path: str | os.PathLike, array: np.ndarray, info: ImageInfo | None = None) -> Path:
    """Write a (H, W) float image in [0, 1] to ``path`` in the stored form ``info`` describes.

    The file is written under a temporary name in the same folder and renamed, so an interrupted
    write never leaves a truncated image. JPEG is written at quality 100 (8-bit only); PNG is lossless
    (fast zlib level :data:`PNG_COMPRESS_LEVEL`);
    TIFF and DICOM keep the stored type, range and polarity that ``info`` records.
    """
    path = Path(path)
    bit_depth = info.bit_depth if info is not None else 8
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        from datamodules.io.tiff import write_tiff

        return write_tiff(path, array, info)
    if suffix in DICOM_SUFFIXES or (suffix not in IMAGE_SUFFIXES and info is not None and info.source is not None):
        from datamodules.io.dicom import write_dicom  # also a DICOM named without an extension

        return write_dicom(path, array, info)
    if suffix not in PIL_SUFFIXES:
        raise ValueError(f"{path}: cannot write {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if suffix in (".jpg", ".jpeg") and container_bits(bit_depth) != 8:
        raise ValueError(f"{path}: JPEG holds 8-bit data only, got {bit_depth}-bit")
    stored = to_stored(np.asarray(array, dtype=np.float32), bit_depth)
    image = Image.fromarray(stored)
    if suffix == ".png":
        chunks = PngInfo()
        if bit_depth != container_bits(bit_depth):
            chunks.add(b"sBIT", bytes([bit_depth]))  # 12-bit values in a 16-bit PNG say so
        return atomic_write(
            path, lambda tmp: image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL, pnginfo=chunks)
        )
    return atomic_write(path, lambda tmp: image.save(tmp, format="JPEG", quality=100, subsampling=0))
