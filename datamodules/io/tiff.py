"""TIFF radiographs: 8/16-bit unsigned integers or floating point, via tifffile.

Integer bit depth (``bit_depth="auto"``): ``SMaxSampleValue`` or ``MaxSampleValue`` when the file
sets one below the container's maximum (4095: 12-bit), else ``BitsPerSample`` (a packed 12-bit TIFF
says 12), else the container. A written 12-bit result sets ``MaxSampleValue`` = 4095.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

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

MAX_SAMPLE_VALUE = 281  # TIFF tag: the largest value the image uses (default 2**BitsPerSample - 1)


def _declared_bits(page: tifffile.TiffPage) -> int | None:
    """Significant bits the first page declares: from its largest sample value, else BitsPerSample."""
    for name in ("SMaxSampleValue", "MaxSampleValue"):
        tag = page.tags.get(name)
        if tag is not None:
            value = tag.value[0] if isinstance(tag.value, tuple) else tag.value
            if isinstance(value, (int, np.integer)) and value > 0:
                return int(value).bit_length()
    return int(page.bitspersample) or None


def read_tiff(path: Path, bit_depth: BitDepth = "auto") -> tuple[np.ndarray, ImageInfo]:
    """Integers are divided by ``2**bits - 1`` (module doc). Floats already in [0, 1] are kept as they
    are; other float ranges are mapped from [min, max] of the image to [0, 1], and that range is recorded."""
    try:
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.series[0].pages)
            if pages > 1:
                raise ImageReadError(f"{path}: TIFF with {pages} pages; only one image per file is supported")
            raw = tif.asarray()
            declared = _declared_bits(tif.pages[0])
    except ImageReadError:
        raise
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except Exception as err:  # noqa: BLE001 - tifffile raises many types for corrupt data
        raise ImageReadError(f"{path}: cannot read TIFF ({err})") from err
    raw = grey_channel(np.asarray(raw), path, f"TIFF {raw.shape}")
    suffix = path.suffix.lower()
    if raw.dtype in (np.uint8, np.uint16):
        container = 8 if raw.dtype == np.uint8 else 16
        array, depth = scale_integers(raw, path, container, declared, bit_depth)
        return array, ImageInfo(depth, suffix)
    if np.issubdtype(raw.dtype, np.floating):
        values = raw.astype(np.float32)
        if not np.isfinite(values).all():
            raise ImageReadError(f"{path}: float TIFF contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return values, ImageInfo(32, suffix, kind="float", value_range=(0.0, 1.0))
        span = high - low if high > low else 1.0
        return (values - low) / span, ImageInfo(32, suffix, kind="float", value_range=(low, low + span))
    raise ImageReadError(f"{path}: unsupported TIFF sample type {raw.dtype} (need uint8, uint16 or float)")


def write_tiff(path: Path, array: np.ndarray, info: ImageInfo | None) -> Path:
    info = info or ImageInfo(16, path.suffix.lower())
    array = np.asarray(array, dtype=np.float32)
    tags: list[tuple] = []
    if info.kind == "float":
        low, high = info.value_range or (0.0, 1.0)
        data = (np.clip(array, 0.0, 1.0) * np.float32(high - low) + np.float32(low)).astype(np.float32)
    elif 1 <= info.bit_depth <= 16:
        data = to_stored(array, info.bit_depth)
        if info.bit_depth != container_bits(info.bit_depth):
            tags.append((MAX_SAMPLE_VALUE, "H", 1, (1 << info.bit_depth) - 1, True))
    else:
        raise ValueError(f"{path}: cannot write a {info.bit_depth}-bit integer TIFF; use 1..16")
    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack", extratags=tags))
