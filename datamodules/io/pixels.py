"""What every image format shares: how an image was stored (:class:`ImageInfo`), the one read error,
and integer <-> [0, 1] conversion. :mod:`datamodules.io.images` (PNG/JPEG and the dispatch by format),
:mod:`datamodules.io.tiff` and :mod:`datamodules.io.dicom` import it; it imports none of them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

BitDepth = int | Literal["auto"]  # significant bits of integer data (1..16), or read from the file


class ImageReadError(ValueError):
    """An image file that cannot be read as a greyscale radiograph; the message names the file."""


@dataclass(frozen=True)
class ImageInfo:
    """How an image was stored: enough to write a result back in the same form."""

    bit_depth: int  # significant bits of integer data, 1..16 (PNG sBIT, DICOM Bits Stored); 32 for float TIFF
    suffix: str  # lower-case file suffix, e.g. ".png"; ".dcm" for a DICOM without one
    kind: str = "uint"  # "uint", "int" (signed DICOM holding negative values) or "float" (TIFF)
    value_range: tuple[float, float] | None = None  # float TIFF: the values that map to 0 and 1
    photometric: str = "MONOCHROME2"  # DICOM MONOCHROME1 is stored inverted (bright = thin)
    source: str | None = None  # DICOM: the file whose tags a written result keeps


def scale_integers(
    raw: np.ndarray, path: Path, container: int, declared: int | None, bit_depth: BitDepth
) -> tuple[np.ndarray, int]:
    """Unsigned integers of a ``container``-bit file to float32 [0, 1], and the bit depth used.

    ``bit_depth`` stated: the values must fit it. ``auto``: the bit depth the file ``declared`` when
    the values fit it, else the container (values above it are samples scaled to the full container,
    as the PNG standard has it for ``sBIT``).
    """
    top = int(raw.max()) if raw.size else 0
    if bit_depth != "auto":
        if bit_depth > container:
            raise ImageReadError(f"{path}: bit_depth={bit_depth} is more than this {container}-bit file holds")
        if top > (1 << bit_depth) - 1:
            raise ImageReadError(
                f"{path}: values up to {top} do not fit bit_depth={bit_depth} (0..{(1 << bit_depth) - 1}); "
                "state the data's real bit depth or bit_depth=auto"
            )
        depth = bit_depth
    elif declared is not None and 1 <= declared < container and top <= (1 << declared) - 1:
        depth = declared
    else:
        depth = container
    return raw.astype(np.float32) / np.float32((1 << depth) - 1), depth


def grey_channel(array: np.ndarray, path: Path, label: str) -> np.ndarray:
    """(H, W) from (H, W) or a grey (H, W, C) array; a warning for grey RGB(A), an error for colour."""
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        colour = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
        if not (colour == colour[..., :1]).all():
            raise ImageReadError(f"{path}: colour image ({label}); only greyscale radiographs are supported")
        if array.shape[-1] > 1:
            warnings.warn(f"{path}: stored as {label} but grey; using one channel", stacklevel=3)
        return colour[..., 0]
    raise ImageReadError(f"{path}: unsupported image shape {array.shape} (need one greyscale image)")


def container_bits(bit_depth: int) -> int:
    """The integer type (8 or 16 bits) that holds ``bit_depth``-bit values."""
    if not 1 <= bit_depth <= 16:
        raise ValueError(f"unsupported bit depth {bit_depth}; use 1..16")
    return 8 if bit_depth <= 8 else 16


def to_stored(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clip a [0, 1] float array and round it to 0..2**bit_depth - 1 in uint8 or uint16."""
    max_value = (1 << bit_depth) - 1
    dtype = np.uint8 if container_bits(bit_depth) == 8 else np.uint16
    scaled = np.clip(array, 0.0, 1.0)  # the one float temporary: huge images stay within memory
    scaled *= max_value
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype)
