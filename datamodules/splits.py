"""Which split a file of a flat folder belongs to, and the noise seed of each evaluation split.

Kept apart from :mod:`datamodules.datamodule` (which imports Lightning) so that reports and other
Lightning-free tools rebuild exactly the same splits and noisy images as training did.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from datamodules.io.pairing import DatasetLayoutError, find_clean_images, list_images

# Seed offsets keep validation and test noise independent of each other (and of train-split reports).
SPLIT_SEED_OFFSET = {"val": 0, "test": 1_000_000, "train": 2_000_000}


def check_fractions(val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """``(val_fraction, test_fraction)`` as floats; ``ValueError`` naming the keys unless both are in [0, 1)
    and their sum is below 1."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"data.val_fraction + data.test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    return float(val_fraction), float(test_fraction)


def hash_split(name: str, val_fraction: float, test_fraction: float) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a file name, from a stable hash (CRC-32) of the name."""
    position = zlib.crc32(name.encode("utf-8")) / 2**32
    if position < val_fraction:
        return "val"
    if position < val_fraction + test_fraction:
        return "test"
    return "train"


def clean_split(root: Path, split: str, val_fraction: float, test_fraction: float) -> list[Path]:
    """The clean images of ``split``: ``root/split/high/`` in the paired layout, ``root/split/`` when it
    exists (or ``root`` has split folders), else the files of the flat folder ``root`` whose name
    hashes into ``split`` (:func:`hash_split`)."""
    if (root / split / "high").is_dir():  # real pairs: their full-dose half are the clean images
        return find_clean_images(root / split / "high")
    if (root / split).is_dir() or (root / "train").is_dir():
        return find_clean_images(root / split)
    images = find_clean_images(root)
    chosen = [p for p in images if hash_split(p.name, val_fraction, test_fraction) == split]
    if not chosen:
        raise DatasetLayoutError(
            f"{root}: no images fall in the {split} split ({len(images)} images; "
            f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction})"
        )
    return chosen


def noisy_split(root: Path, split: str, val_fraction: float, test_fraction: float) -> list[Path]:
    """The low-dose images of ``split`` (``data=noisy``): ``root/split/low/`` in the paired layout (its
    low-dose half), else as :func:`clean_split` picks clean images (``root/split/`` or a flat folder
    split by file-name hash). Files are listed, not read: training's pre-flight decodes them.

    Raises:
        DatasetLayoutError: ``root`` (or the split's folder) holds no image files; the message names it.
    """
    root = Path(root)
    if (root / split / "low").is_dir():
        return find_clean_images(root / split / "low")
    if not (root / split).is_dir() and not (root / "train").is_dir() and not list_images(root):
        hint = f"; the low-dose images are in {root / 'low'}?" if (root / "low").is_dir() else ""
        raise DatasetLayoutError(
            f"data.root={root}: no PNG, JPEG, TIFF or DICOM images in it (nor train/, val/, test/ folders){hint}"
        )
    return clean_split(root, split, val_fraction, test_fraction)


def eval_seed(seed: int, split: str) -> int:
    """First noise seed of ``split``'s fixed noisy images: image ``i`` uses ``eval_seed(...) + i``.

    Training draws fresh noise; ``"train"`` here is only for reports evaluated on the training images.
    """
    if split not in SPLIT_SEED_OFFSET:
        raise ValueError(f"unknown split {split!r}; use one of {tuple(SPLIT_SEED_OFFSET)}")
    return int(seed) + SPLIT_SEED_OFFSET[split]
