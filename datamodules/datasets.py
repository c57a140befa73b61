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
from datamodules.io.pixels import BitDepth
from datamodules.noise import DoseSpec, NoiseModel, check_fraction, sample_dose
from datamodules.patches import random_aligned_crop, random_dihedral

Sample = dict[str, torch.Tensor | str | int]


class _ImageCache:
    """Reads images as (1, H, W) tensors, kept in memory when ``enabled``."""

    def __init__(self, enabled: bool, bit_depth: BitDepth | None = None) -> None:
        self.enabled = enabled
        self.bit_depth = bit_depth
        self._store: dict[Path, torch.Tensor] = {}

    def load(self, path: Path) -> torch.Tensor:
        if path in self._store:
            return self._store[path]
        tensor = torch.from_numpy(read_image(path, self.bit_depth)[0]).unsqueeze(0)
        if self.enabled:
            self._store[path] = tensor
        return tensor


class _ImageFileDataset(Dataset):
    """What every dataset here shares: ``patches_per_image`` samples per item, read through a cache,
    cropped to ``patch_size`` (``None``: full images) and flipped/rotated when ``augment``."""

    def __init__(
        self,
        items: list,
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        min_foreground: float = 0.0,
        bit_depth: BitDepth | None = None,
    ) -> None:
        self._items = items
        self.bit_depth = bit_depth  # of integer images (datamodules.io.images.read_image); None: as stated around
        self.patch_size = patch_size
        self.augment = augment
        self.patches_per_image = patches_per_image
        self.min_foreground = min_foreground
        self._cache = _ImageCache(cache, bit_depth)

    def __len__(self) -> int:
        return len(self._items) * self.patches_per_image

    def _item(self, index: int):
        return self._items[index // self.patches_per_image]

    def _crop(self, images: list[torch.Tensor], name: str) -> list[torch.Tensor]:
        """The same random patch and dihedral view of every image; ``min_foreground`` looks at the last one."""
        if self.patch_size is not None:
            images = random_aligned_crop(images, self.patch_size, name=name, min_foreground=self.min_foreground)
        if self.augment:
            images = random_dihedral(images)
        return images


class PairedImageDataset(_ImageFileDataset):
    """Real low-/high-dose pairs read from disk.

    Args:
        items: the pairs, as found by :func:`datamodules.io.pairing.find_pairs`.
        patch_size: crop a random aligned square of this size (``None``: full images).
        augment: apply a random flip/90° rotation.
        patches_per_image: how many samples each image gives per epoch.
        cache: keep decoded images in memory (for small datasets).
        min_foreground: redraw patches whose clean image is more than ``1 - min_foreground``
            background (pixels at or below 0.05).
        noise: when given, the low-dose input is simulated afresh from the whole clean image every
            time (a noise model fitted to these pairs: no fixed noise to memorise), except for a share
            ``real_fraction`` of the samples, which keep the real low-dose image.
    """

    def __init__(
        self,
        items: list[ImagePair],
        patch_size: int | None = None,
        augment: bool = False,
        patches_per_image: int = 1,
        cache: bool = False,
        min_foreground: float = 0.0,
        noise: NoiseModel | None = None,
        real_fraction: float = 0.0,
        bit_depth: BitDepth | None = None,
    ) -> None:
        super().__init__(items, patch_size, augment, patches_per_image, cache, min_foreground, bit_depth)
        self.noise = noise
        self.real_fraction = check_fraction(real_fraction, "data.real_fraction")

    @property
    def pairs(self) -> list[ImagePair]:
        return self._items

    def source(self, index: int) -> str:
        """The low-dose file of sample ``index`` (named when the sample cannot be loaded)."""
        return str(self._item(index).low)

    def __getitem__(self, index: int) -> Sample:
        pair = self._item(index)
        high = self._cache.load(pair.high)
        if self.noise is not None and float(torch.rand(())) >= self.real_fraction:
            # the whole image, before cropping: a JPEG step then puts its 8x8 blocks where a stored image has them
            low = self.noise.simulate(high, 1.0)
        else:
            low = self._cache.load(pair.low)
        if low.shape != high.shape:
            raise ValueError(
                f"{pair.low}: size {tuple(low.shape[-2:])} differs from {pair.high} {tuple(high.shape[-2:])}"
            )
        low, high = self._crop([low, high], str(pair.low))
        return {"low": low, "high": high, "name": pair.name, "source": str(pair.low)}


class _SingleFileDataset(_ImageFileDataset):
    """A dataset of single image files (no partner on disk): the file list and one cropped image per sample."""

    @property
    def images(self) -> list[Path]:
        return self._items

    def source(self, index: int) -> str:
        """The file of sample ``index`` (named when the sample cannot be loaded)."""
        return str(self._item(index))

    def _cropped(self, index: int) -> tuple[Path, torch.Tensor]:
        path = self._item(index)
        (image,) = self._crop([self._cache.load(path)], str(path))
        return path, image


class NoisyImageDataset(_SingleFileDataset):
    """Noisy images alone (``data=noisy``, self-supervised training): samples ``{"low", "name", "source"}``.

    Args:
        items: the noisy image files.
        patch_size, augment, patches_per_image, cache, min_foreground: as in
            :class:`PairedImageDataset`; the foreground test looks at the noisy image itself (there is
            no clean one).
    """

    def __getitem__(self, index: int) -> Sample:
        path, low = self._cropped(index)
        return {"low": low, "name": path.name, "source": str(path)}


class SimulatedPairDataset(_SingleFileDataset):
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
        bit_depth: BitDepth | None = None,
    ) -> None:
        super().__init__(images, patch_size, augment, patches_per_image, cache, min_foreground, bit_depth)
        self.noise = noise
        self.dose = dose
        self.seed = seed

    def __getitem__(self, index: int) -> Sample:
        path, high = self._cropped(index)
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed + index)
        dose = sample_dose(self.dose, generator)
        low = self.noise.simulate(high, dose, generator)
        return {"low": low, "high": high, "name": path.name, "source": str(path), "dose": dose}
