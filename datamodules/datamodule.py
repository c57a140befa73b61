"""LightningDataModules: real paired folders and clean folders with simulated low-dose inputs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from datamodules.datasets import PairedImageDataset, SimulatedPairDataset
from datamodules.degradation import AffineGaussianDegradation
from datamodules.image_io import image_size
from datamodules.pairing import DatasetLayoutError, find_clean_images, find_pairs

SPLITS = ("train", "val", "test")
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample_data"


class _DenoisingDataModule(L.LightningDataModule):
    """Shared loader logic; subclasses say which files make each split and how a dataset is built."""

    def __init__(
        self,
        root: str | None,
        batch_size: int = 16,
        patch_size: int | None = 128,
        patches_per_image: int = 1,
        augment: bool = True,
        num_workers: int = 0,
        cache: bool = False,
        eval_batch_size: int = 1,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("patches_per_image", patches_per_image),
                           ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
        if patch_size is not None and int(patch_size) < 1:
            raise ValueError(f"data.patch_size must be >= 1 (or null for full images), got {patch_size}")
        if int(num_workers) < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        self.root = Path(root).expanduser().resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise DatasetLayoutError(f"data.root: folder not found: {self.root}")
        self.batch_size = int(batch_size)
        self.patch_size = None if patch_size is None else int(patch_size)
        self.patches_per_image = int(patches_per_image)
        self.augment = augment
        self.num_workers = int(num_workers)
        self.cache = cache
        self.eval_batch_size = int(eval_batch_size)
        self._datasets: dict[str, Dataset] = {}

    def _files(self, split: str) -> list[Path]:
        raise NotImplementedError

    def _build(self, split: str, train: bool) -> Dataset:
        raise NotImplementedError

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (built once); training samples are patches, the others full images."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        if split not in self._datasets:
            self._datasets[split] = self._build(split, train=split == "train")
        return self._datasets[split]

    def _check_patch_size(self) -> None:
        if self.patch_size is None:
            return
        for path in self._files("train"):
            height, width = image_size(path)
            if min(height, width) < self.patch_size:
                raise ValueError(
                    f"data.patch_size={self.patch_size} is larger than {path} ({width}x{height})"
                )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.dataset("train")
            self._check_patch_size()
            self.dataset("val")
        if stage in (None, "validate"):
            self.dataset("val")
        if stage in (None, "test", "predict"):
            self.dataset("test")

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.dataset(split)) >= batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.eval_batch_size)


class PairedDataModule(_DenoisingDataModule):
    """Real pairs in the original layout ``root/{train,val,test}/{high,low}/NAME`` (PNG/JPEG, 8/16-bit)."""

    def __init__(self, root: str, **kwargs) -> None:
        if root is None:
            raise DatasetLayoutError("data.root is not set: point it at a folder with train/, val/ and test/")
        super().__init__(root, **kwargs)
        self._pairs: dict[str, list] = {}

    def pairs(self, split: str):
        if split not in self._pairs:
            self._pairs[split] = find_pairs(self.root / split)
        return self._pairs[split]

    def _files(self, split: str) -> list[Path]:
        return [pair.high for pair in self.pairs(split)]

    def _build(self, split: str, train: bool) -> Dataset:
        return PairedImageDataset(
            self.pairs(split),
            patch_size=self.patch_size if train else None,
            augment=self.augment and train,
            patches_per_image=self.patches_per_image if train else 1,
            cache=self.cache,
        )


class SimulatedDataModule(_DenoisingDataModule):
    """Clean images in ``root/{train,val,test}/`` with low-dose inputs simulated on the fly.

    ``root=None`` uses the radiographs embedded in the package (see ``sample_data/CREDITS.md``).
    Validation and test noise is fixed by ``seed`` so every epoch and run sees the same inputs.
    """

    def __init__(
        self,
        root: str | None = None,
        gain: float = 0.585,
        offset: float = 12.2 / 255,
        sigma: float = 11.8 / 255,
        quantize_bits: int | None = 8,
        seed: int = 1234,
        **kwargs,
    ) -> None:
        super().__init__(str(SAMPLE_ROOT) if root is None else root, **kwargs)
        self.degradation = AffineGaussianDegradation(gain=gain, offset=offset, sigma=sigma, quantize_bits=quantize_bits)
        self.seed = int(seed)
        self._images: dict[str, list[Path]] = {}

    def _files(self, split: str) -> list[Path]:
        if split not in self._images:
            self._images[split] = find_clean_images(self.root / split)
        return self._images[split]

    def _build(self, split: str, train: bool) -> Dataset:
        # Different seed offsets keep val and test noise independent of each other.
        eval_seed = self.seed + (1_000_000 if split == "test" else 0)
        return SimulatedPairDataset(
            self._files(split),
            self.degradation,
            patch_size=self.patch_size if train else None,
            augment=self.augment and train,
            patches_per_image=self.patches_per_image if train else 1,
            cache=self.cache,
            seed=None if train else eval_seed,
        )
