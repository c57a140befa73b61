"""Finding images on disk: paired ``{split}/{high,low}/`` folders and plain folders of clean images."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from datamodules.io.images import image_size, is_image_file


class DatasetLayoutError(ValueError):
    """The data folders do not have the expected layout; the message names the file or folder."""


@dataclass(frozen=True)
class ImagePair:
    name: str
    low: Path
    high: Path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (PNG, JPEG, TIFF, DICOM) directly inside ``folder``, sorted by name.

    Other files are skipped with one summary warning per folder; hidden files silently.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder not found")
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    skipped = sorted(p.name for p in files if not is_image_file(p))
    if skipped:
        shown = ", ".join(skipped[:5]) + (f", ... ({len(skipped) - 5} more)" if len(skipped) > 5 else "")
        warnings.warn(f"{folder}: skipped {len(skipped)} non-image file(s): {shown}", stacklevel=2)
    return sorted(p for p in files if is_image_file(p))


def find_pairs(split_dir: str | os.PathLike, check_sizes: bool = True) -> list[ImagePair]:
    """Pair ``split_dir/low/NAME`` with ``split_dir/high/NAME``.

    Raises:
        DatasetLayoutError: a folder is missing or empty, an image has no partner of the same name,
            or the two images of a pair differ in size (``check_sizes``; reads headers only).
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DatasetLayoutError(f"{split_dir}: split folder not found")
    high = {p.name: p for p in list_images(split_dir / "high")}
    low = {p.name: p for p in list_images(split_dir / "low")}
    if not high and not low:
        raise DatasetLayoutError(f"{split_dir}: no images in high/ or low/ (empty split)")
    only_high = sorted(set(high) - set(low))
    if only_high:
        raise DatasetLayoutError(
            f"{split_dir / 'high' / only_high[0]}: no low-dose partner {split_dir / 'low' / only_high[0]}"
            + (f" (and {len(only_high) - 1} more unpaired)" if len(only_high) > 1 else "")
        )
    only_low = sorted(set(low) - set(high))
    if only_low:
        raise DatasetLayoutError(
            f"{split_dir / 'low' / only_low[0]}: no high-dose partner {split_dir / 'high' / only_low[0]}"
            + (f" (and {len(only_low) - 1} more unpaired)" if len(only_low) > 1 else "")
        )
    pairs = [ImagePair(name=name, low=low[name], high=high[name]) for name in sorted(high)]
    if check_sizes:
        for pair in pairs:
            low_size, high_size = image_size(pair.low), image_size(pair.high)
            if low_size != high_size:
                raise DatasetLayoutError(
                    f"{pair.low}: size {low_size[1]}x{low_size[0]} differs from its partner "
                    f"{pair.high} ({high_size[1]}x{high_size[0]})"
                )
    return pairs


def find_clean_images(folder: str | os.PathLike) -> list[Path]:
    """Clean images directly in ``folder``; raises :class:`DatasetLayoutError` if there are none."""
    images = list_images(folder)
    if not images:
        raise DatasetLayoutError(f"{folder}: no PNG, JPEG, TIFF or DICOM images (empty split)")
    return images
