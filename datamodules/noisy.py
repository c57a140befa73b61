"""Low-dose images without clean partners (``data=noisy``), for self-supervised training.

Which files make each split (:func:`noisy_split`) and the dataset (:class:`NoisyImageDataset`,
samples ``{"low", "name", "source"}``: no ``high``). Lightning-free; the LightningDataModule is
:class:`datamodules.datamodule.NoisyDataModule`.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from datamodules.datasets import Sample, _augment, _ImageCache
from datamodules.io.images import image_size
from datamodules.io.pairing import DatasetLayoutError, list_images
from datamodules.splits import clean_split


def noisy_split(root: Path, split: str, val_fraction: float, test_fraction: float) -> list[Path]:
    """The low-dose images of ``split`` under ``root``, in any layout the data modules read.

    ``root/split/low/`` (the paired layout: its low-dose half), ``root/split/``, or one flat folder
    split by file-name hash (as :class:`~datamodules.datamodule.SimulatedDataModule` does).

    Raises:
        DatasetLayoutError: ``root`` (or the split's folder) holds no image files.
        ImageReadError: an image file whose header cannot be read; the message names it.
    """
    root = Path(root)
    if (root / split / "low").is_dir():
        files = list_images(root / split / "low")
        if not files:
            raise DatasetLayoutError(f"{root / split / 'low'}: no PNG, JPEG, TIFF or DICOM images (empty split)")
    else:
        if not (root / split).is_dir() and not (root / "train").is_dir() and not list_images(root):
            hint = f"; the low-dose images are in {root / 'low'}?" if (root / "low").is_dir() else ""
            raise DatasetLayoutError(
                f"data.root={root}: no PNG, JPEG, TIFF or DICOM images in it (nor train/, val/, test/ folders){hint}"
            )
        files = clean_split(root, split, val_fraction, test_fraction)
    for path in files:
        image_size(path)  # a header read: an unreadable file stops the run here, named
    return files


class NoisyImageDataset(Dataset):
    """Noisy images alone: random patches (training) or full images, with flips/rotations.

    Args:
        images: the noisy image files.
        patch_size, augment, patches_per_image, cache, min_foreground: as in
            :class:`~datamodules.datasets.PairedImageDataset`; the foreground test looks at the
            noisy image itself (there is no clean one).
    """

    def __init__(
        self,
        images: list[Path],
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        min_foreground: float = 0.0,
    ) -> None:
        self.images = images
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self.min_foreground = min_foreground
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index // self.patches_per_image]
        (low,) = _augment([self._cache.load(path)], self.patch_size, self.augment, str(path), self.min_foreground)
        return {"low": low, "name": path.name, "source": str(path)}
