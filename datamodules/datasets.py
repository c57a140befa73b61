"""Datasets yielding ``{"low", "high", "name", "source"}`` samples; images (1, H, W), float32 in [0, 1].

``source`` is the file whose format a denoised result is written back in (the low-dose input of a
real pair, the clean image of a simulated one).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from datamodules.io.images import read_image
from datamodules.io.pairing import ImagePair
from datamodules.noise import DoseSpec, NoiseModel, sample_dose
from datamodules.patches import random_aligned_crop, random_dihedral

Sample = dict[str, torch.Tensor | str | int]


class _ImageCache:
    """Reads images as (1, H, W) tensors, kept in memory when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._store: dict[Path, torch.Tensor] = {}

    def load(self, path: Path) -> torch.Tensor:
        if path in self._store:
            return self._store[path]
        tensor = torch.from_numpy(read_image(path)[0]).unsqueeze(0)
        if self.enabled:
            self._store[path] = tensor
        return tensor


def _augment(
    images: list[torch.Tensor], patch_size: int | None, augment: bool, name: str, min_foreground: float = 0.0
) -> list[torch.Tensor]:
    if patch_size is not None:
        images = random_aligned_crop(images, patch_size, name=name, min_foreground=min_foreground)
    if augment:
        images = random_dihedral(images)
    return images


class PairedImageDataset(Dataset):
    """Real low-/high-dose pairs read from disk.

    Args:
        pairs: the pairs, as found by :func:`datamodules.io.pairing.find_pairs`.
        patch_size: crop a random aligned square of this size (``None``: full images).
        augment: apply a random flip/90° rotation.
        patches_per_image: how many samples each image gives per epoch.
        cache: keep decoded images in memory (for small datasets).
        min_foreground: redraw patches whose clean image is more than ``1 - min_foreground``
            background (pixels at or below 0.05).
    """

    def __init__(
        self,
        pairs: list[ImagePair],
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        min_foreground: float = 0.0,
    ) -> None:
        self.pairs = pairs
        self.min_foreground = min_foreground
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.pairs) * self.patches_per_image

    def source(self, index: int) -> str:
        """The low-dose file of sample ``index`` (named when the sample cannot be loaded)."""
        return str(self.pairs[index // self.patches_per_image].low)

    def __getitem__(self, index: int) -> Sample:
        pair = self.pairs[index // self.patches_per_image]
        low, high = self._cache.load(pair.low), self._cache.load(pair.high)
        if low.shape != high.shape:
            raise ValueError(
                f"{pair.low}: size {tuple(low.shape[-2:])} differs from {pair.high} {tuple(high.shape[-2:])}"
            )
        low, high = _augment([low, high], self.patch_size, self.augment, str(pair.low), self.min_foreground)
        return {"low": low, "high": high, "name": pair.name, "source": str(pair.low)}


class SimulatedPairDataset(Dataset):
    """Clean images from disk with low-dose counterparts simulated on the fly.

    Args:
        images: clean (high-dose) image files.
        noise: a noise model (:class:`datamodules.noise.NoiseModel`).
        dose: a dose fraction, or ``(low, high)`` to draw one log-uniformly per sample (dose-blind).
        patch_size, augment, patches_per_image, cache, min_foreground: as in :class:`PairedImageDataset`.
        seed: ``None`` draws fresh noise every time (training); an integer fixes the noise of image
            ``i`` to ``seed + i`` so every epoch and every run sees the same noisy images (val/test).
    """

    def __init__(
        self,
        images: list[Path],
        noise: NoiseModel,
        dose: DoseSpec = 1.0,
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        seed: int | None = None,
        min_foreground: float = 0.0,
    ) -> None:
        self.images = images
        self.min_foreground = min_foreground
        self.noise = noise
        self.dose = dose
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self.seed = seed
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def source(self, index: int) -> str:
        """The clean file of sample ``index`` (named when the sample cannot be loaded)."""
        return str(self.images[index // self.patches_per_image])

    def __getitem__(self, index: int) -> Sample:
        image_index = index // self.patches_per_image
        path = self.images[image_index]
        (high,) = _augment([self._cache.load(path)], self.patch_size, self.augment, str(path), self.min_foreground)
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed + index)
        dose = sample_dose(self.dose, generator)
        low = self.noise.simulate(high, dose, generator)
        return {"low": low, "high": high, "name": path.name, "source": str(path), "dose": dose}
