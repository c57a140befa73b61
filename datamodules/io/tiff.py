"""TIFF radiographs: 8/16-bit unsigned integers or floating point, via tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from datamodules.io.atomic import atomic_write
from datamodules.io.images import ImageInfo, ImageReadError, grey_channel, to_stored


def read_tiff(path: Path) -> tuple[np.ndarray, ImageInfo]:
    """Integers are divided by 255 or 65535. Floats already in [0, 1] are kept as they are; other
    float ranges are mapped from [min, max] of the image to [0, 1], and that range is recorded."""
    try:
        raw = tifffile.imread(path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except Exception as err:  # noqa: BLE001 - tifffile raises many types for corrupt data
        raise ImageReadError(f"{path}: cannot read TIFF ({err})") from err
    raw = grey_channel(np.asarray(raw), path, f"TIFF {raw.shape}")
    suffix = path.suffix.lower()
    if raw.dtype in (np.uint8, np.uint16):
        depth = 8 if raw.dtype == np.uint8 else 16
        return raw.astype(np.float32) / np.float32((1 << depth) - 1), ImageInfo(depth, suffix)
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
    if info.kind == "float":
        low, high = info.value_range or (0.0, 1.0)
        data = (np.clip(array, 0.0, 1.0) * np.float32(high - low) + np.float32(low)).astype(np.float32)
    elif info.bit_depth in (8, 16):
        data = to_stored(array, info.bit_depth)
    else:
        raise ValueError(f"{path}: cannot write a {info.bit_depth}-bit integer TIFF; use 8 or 16")
    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack"))
