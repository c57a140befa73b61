"""LightningDataModules: real paired folders and clean folders with simulated low-dose inputs."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import lightning as L
import torch
from omegaconf import ListConfig
from torch.utils.data import DataLoader, Dataset

from datamodules import SAMPLE_ROOT
from datamodules.datasets import NoisyImageDataset, PairedImageDataset, SimulatedPairDataset
from datamodules.io.images import check_bit_depth, image_size
from datamodules.io.pairing import DatasetLayoutError, find_pairs
from datamodules.noise import AffineGaussianNoiseModel, DoseSpec, check_dose, check_fraction, check_noise_model
from datamodules.patch_schedule import PatchPhase, check_step_budget, parse_patch_schedule, phase_at
from datamodules.splits import check_fractions, clean_split, eval_seed, noisy_split

SPLITS = ("train", "val", "test")
STANDARD_START_METHODS = ("fork", "spawn", "forkserver")


def worker_start_method() -> str | None:
    """How data-loader workers are started: ``None`` (the process default) unless the process runs
    inside a pool that installed a start method of its own, such as joblib's ``loky`` in the
    workers of ``hydra/launcher=parallel``; torch cannot start its workers that way, so then the
    platform's first standard method (``fork`` on Linux, ``spawn`` on macOS and Windows)."""
    if multiprocessing.get_start_method(allow_none=True) in (None, *STANDARD_START_METHODS):
        return None
    return next(m for m in multiprocessing.get_all_start_methods() if m in STANDARD_START_METHODS)


class _DenoisingDataModule(L.LightningDataModule):
    """Shared loader logic; subclasses say which files make each split and how a dataset is built."""

    has_targets = True  # samples carry a clean "high" image (False: noisy images alone)

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
        min_foreground: float = 0.0,
        patch_schedule: list | None = None,
        bit_depth: int | str = "auto",
    ) -> None:
        super().__init__()
        # data.bit_depth: significant bits of integer images (12 for 12-bit data in 16-bit files without
        # sBIT); auto reads it from each file. None handed to the datasets: what a script states, else auto.
        stated = check_bit_depth(bit_depth, "data.bit_depth")
        self.bit_depth = None if stated == "auto" else stated
        if not 0.0 <= float(min_foreground) <= 1.0:
            raise ValueError(f"data.min_foreground must be in [0, 1], got {min_foreground}")
        self.min_foreground = float(min_foreground)
        for key, value in (
            ("batch_size", batch_size),
            ("patches_per_image", patches_per_image),
            ("eval_batch_size", eval_batch_size),
        ):
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
        # data.patch_schedule (datamodules/patch_schedule.py): phases of patch and batch size; the
        # trainer then rebuilds the training loader every epoch (reload_dataloaders_every_n_epochs=1)
        schedule = None if patch_schedule is None else list(patch_schedule)
        self.patch_phases = parse_patch_schedule(schedule, self.patch_size, self.batch_size)
        self._phase: PatchPhase | None = None  # the last phase announced
        self._datasets: dict[str, Dataset] = {}

    def _files(self, split: str) -> list[Path]:
        raise NotImplementedError

    def _build(self, split: str, train: bool) -> Dataset:
        raise NotImplementedError

    def image_files(self, split: str) -> list[Path]:
        """Every image file ``split`` reads (for the pre-flight decode)."""
        return self._files(split)

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (built once); training samples are patches, the others full images."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        if split not in self._datasets:
            self._datasets[split] = self._build(split, train=split == "train")
        return self._datasets[split]

    def full_images(self, split: str) -> Dataset:
        """Every image of ``split`` whole and unaugmented, even for ``train`` (e.g. to calibrate on)."""
        return self._build(split, train=False)

    def _check_patch_size(self) -> None:
        sizes = [phase.patch_size for phase in self.patch_phases if phase.patch_size is not None]
        if not sizes:
            return
        largest = max(sizes)
        key = "data.patch_size" if largest == self.patch_size else "data.patch_schedule patch_size"
        for path in self._files("train"):
            height, width = image_size(path)
            if min(height, width) < largest:
                raise ValueError(f"{key}={largest} is larger than {path} ({width}x{height})")

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
            multiprocessing_context=worker_start_method() if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        phase = self._training_phase()
        self.dataset("train").patch_size = phase.patch_size  # the loader's workers start afresh and see it
        return self._loader("train", shuffle=True, batch_size=phase.batch_size)

    def _training_phase(self) -> PatchPhase:
        """The patch schedule's phase for the epoch about to start (the first without a schedule or trainer)."""
        if len(self.patch_phases) == 1 or self.trainer is None:
            return self.patch_phases[0]
        step = self.trainer.global_step
        phase = phase_at(self.patch_phases, step, check_step_budget(self.trainer.max_steps, self.trainer.max_epochs))
        if phase != self._phase:
            size = "whole images" if phase.patch_size is None else f"{phase.patch_size}² patches"
            print(f"data.patch_schedule: from step {step}, {size}, batch {phase.batch_size}", flush=True)
        self._phase = phase
        return phase

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.eval_batch_size)


class PairedDataModule(_DenoisingDataModule):
    """Real pairs in the original layout ``root/{train,val,test}/{high,low}/NAME`` (PNG/JPEG, 8/16-bit).

    Args:
        train_noise: a noise model fitted to these pairs (``scripts/fit_noise.py``): training inputs are
            then simulated afresh from the clean images every step; validation and test keep the real
            low-dose images.
        real_fraction: with ``train_noise``, the share of training samples that keep the real input.
        train_subset: train on this many of the training pairs (the same ones for every run), e.g. to
            measure what more data is worth at equal steps.
    """

    def __init__(
        self,
        root: str,
        train_noise=None,
        real_fraction: float = 0.0,
        train_subset: int | None = None,
        **kwargs,
    ) -> None:
        if root is None:
            raise DatasetLayoutError("data.root is not set: point it at a folder with train/, val/ and test/")
        super().__init__(root, **kwargs)
        self.train_noise = None if train_noise is None else check_noise_model(train_noise, "data.train_noise")
        self.real_fraction = check_fraction(real_fraction, "data.real_fraction")  # before the datasets are built
        if train_subset is not None and (isinstance(train_subset, bool) or int(train_subset) < 1):
            raise ValueError(f"data.train_subset must be a positive number of pairs (or null), got {train_subset!r}")
        self.train_subset = None if train_subset is None else int(train_subset)
        self._pairs: dict[str, list] = {}

    def pairs(self, split: str):
        if split not in self._pairs:
            pairs = find_pairs(self.root / split)
            if split == "train" and self.train_subset is not None:
                if self.train_subset > len(pairs):
                    raise ValueError(
                        f"data.train_subset={self.train_subset} is more than the {len(pairs)} pairs in {self.root / split}"
                    )
                # The same pairs for every run and seed: the subset is part of the data, not of the run.
                keep = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))[: self.train_subset]
                pairs = [pairs[i] for i in sorted(keep.tolist())]
            self._pairs[split] = pairs
        return self._pairs[split]

    def _files(self, split: str) -> list[Path]:
        return [pair.high for pair in self.pairs(split)]

    def image_files(self, split: str) -> list[Path]:
        return [path for pair in self.pairs(split) for path in (pair.low, pair.high)]

    def _build(self, split: str, train: bool) -> Dataset:
        return PairedImageDataset(
            self.pairs(split),
            patch_size=self.patch_size if train else None,
            augment=self.augment and train,
            patches_per_image=self.patches_per_image if train else 1,
            cache=self.cache,
            min_foreground=self.min_foreground,
            noise=self.train_noise if train else None,
            real_fraction=self.real_fraction,
            bit_depth=self.bit_depth,
        )


class SimulatedDataModule(_DenoisingDataModule):
    """Clean images with low-dose inputs simulated on the fly by a noise model at a dose.

    ``root`` is either a folder with ``train/``, ``val/`` and ``test/`` subfolders of clean images,
    or one flat folder of clean images, split by a stable hash of each file name
    (``val_fraction``/``test_fraction``), so adding images never moves the others between splits.
    ``root=None`` uses the radiographs embedded in the package (see ``sample_data/CREDITS.md``).

    Args:
        noise: the low-dose model, any object with ``simulate(clean, dose, generator)``
            (``None``: :class:`AffineGaussianNoiseModel` with its measured defaults).
        dose: dose fraction (1 = full dose), or ``[low, high]`` to train one dose-blind model on
            log-uniformly drawn doses.
        seed: fixes validation and test noise (and their doses) per image, for every epoch and run.
    """

    def __init__(
        self,
        root: str | None = None,
        noise=None,
        dose: DoseSpec = 1.0,
        seed: int = 1234,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(str(SAMPLE_ROOT) if root is None else root, **kwargs)
        self.noise = AffineGaussianNoiseModel() if noise is None else check_noise_model(noise, "data.noise")
        self.dose = check_dose(dose if not isinstance(dose, ListConfig) else list(dose))
        self.seed = int(seed)
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self._images: dict[str, list[Path]] = {}

    def _files(self, split: str) -> list[Path]:
        if split not in self._images:
            self._images[split] = clean_split(self.root, split, self.val_fraction, self.test_fraction)
        return self._images[split]

    def _build(self, split: str, train: bool) -> Dataset:
        return SimulatedPairDataset(
            self._files(split),
            self.noise,
            dose=self.dose,
            patch_size=self.patch_size if train else None,
            augment=self.augment and train,
            patches_per_image=self.patches_per_image if train else 1,
            cache=self.cache,
            seed=None if train else eval_seed(self.seed, split),
            min_foreground=self.min_foreground,
            bit_depth=self.bit_depth,
        )


class NoisyDataModule(_DenoisingDataModule):
    """Low-dose images alone, no clean partners, for self-supervised training (``training=<method>``).

    ``root``: ``root/{train,val,test}/low/`` (the paired layout's low-dose half), ``root/{train,val,test}/``,
    or one flat folder split by file-name hash (``val_fraction``/``test_fraction``), PNG/JPEG/TIFF/DICOM.
    Samples are ``{"low", "name", "source"}``; see :class:`datamodules.datasets.NoisyImageDataset`.
    """

    has_targets = False

    def __init__(self, root: str, val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs) -> None:
        if root is None:
            raise DatasetLayoutError("data.root is not set: point it at a folder of low-dose images")
        super().__init__(root, **kwargs)
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self._images: dict[str, list[Path]] = {}

    def _files(self, split: str) -> list[Path]:
        if split not in self._images:
            self._images[split] = noisy_split(self.root, split, self.val_fraction, self.test_fraction)
        return self._images[split]

    def _build(self, split: str, train: bool) -> Dataset:
        return NoisyImageDataset(
            self._files(split),
            patch_size=self.patch_size if train else None,
            augment=self.augment and train,
            patches_per_image=self.patches_per_image if train else 1,
            cache=self.cache,
            min_foreground=self.min_foreground,
            bit_depth=self.bit_depth,
        )
