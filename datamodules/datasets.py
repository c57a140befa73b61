"""Datasets yielding ``{"low", "high", "name"}`` samples of shape (1, H, W), float32 in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from datamodules.dose import DoseSpec, sample_dose
from datamodules.image_io import ImageInfo, read_image
from datamodules.pairing import ImagePair
from datamodules.patches import random_aligned_crop, random_dihedral

Sample = dict[str, torch.Tensor | str | int]


class _ImageCache:
    """Reads images as (1, H, W) tensors with their :class:`ImageInfo`, kept in memory when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._store: dict[Path, tuple[torch.Tensor, ImageInfo]] = {}

    def load(self, path: Path) -> tuple[torch.Tensor, ImageInfo]:
        if path in self._store:
            return self._store[path]
        array, info = read_image(path)
        entry = (torch.from_numpy(array).unsqueeze(0), info)
        if self.enabled:
            self._store[path] = entry
        return entry


def _augment(images: list[torch.Tensor], patch_size: int | None, augment: bool, name: str) -> list[torch.Tensor]:
    if patch_size is not None:
        images = random_aligned_crop(images, patch_size, name=name)
    if augment:
        images = random_dihedral(images)
    return images


class PairedImageDataset(Dataset):
    """Real low-/high-dose pairs read from disk.

    Args:
        pairs: the pairs, as found by :func:`datamodules.pairing.find_pairs`.
        patch_size: crop a random aligned square of this size (``None``: full images).
        augment: apply a random flip/90° rotation.
        patches_per_image: how many samples each image gives per epoch.
        cache: keep decoded images in memory (for small datasets).
    """

    def __init__(
        self,
        pairs: list[ImagePair],
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
    ) -> None:
        self.pairs = pairs
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.pairs) * self.patches_per_image

    def __getitem__(self, index: int) -> Sample:
        pair = self.pairs[index // self.patches_per_image]
        (low, info), (high, _) = self._cache.load(pair.low), self._cache.load(pair.high)
        if low.shape != high.shape:
            raise ValueError(f"{pair.low}: size {tuple(low.shape[-2:])} differs from {pair.high} {tuple(high.shape[-2:])}")
        low, high = _augment([low, high], self.patch_size, self.augment, str(pair.low))
        return {"low": low, "high": high, "name": pair.name, "bit_depth": info.bit_depth}


class SimulatedPairDataset(Dataset):
    """Clean images from disk with low-dose counterparts simulated on the fly.

    Args:
        images: clean (high-dose) image files.
        degradation: any object with ``simulate(clean, dose, generator) -> noisy``.
        dose: a dose fraction, or ``(low, high)`` to draw one log-uniformly per sample (dose-blind).
        patch_size, augment, patches_per_image, cache: as in :class:`PairedImageDataset`.
        seed: ``None`` draws fresh noise every time (training); an integer fixes the noise of image
            ``i`` to ``seed + i`` so every epoch and every run sees the same noisy images (val/test).
    """

    def __init__(
        self,
        images: list[Path],
        degradation,
        dose: DoseSpec = 1.0,
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        seed: int | None = None,
    ) -> None:
        self.images = images
        self.degradation = degradation
        self.dose = dose
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self.seed = seed
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def __getitem__(self, index: int) -> Sample:
        image_index = index // self.patches_per_image
        path = self.images[image_index]
        clean, info = self._cache.load(path)
        (high,) = _augment([clean], self.patch_size, self.augment, str(path))
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed + index)
        dose = sample_dose(self.dose, generator)
        low = self.degradation.simulate(high, dose, generator)
        return {"low": low, "high": high, "name": path.name, "bit_depth": info.bit_depth, "dose": dose}
