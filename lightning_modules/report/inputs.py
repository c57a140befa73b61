"""Which images a report evaluates and how their low-dose inputs are made, from a run's saved config.

Imports no Lightning: the run's data config is read, not instantiated as a datamodule, and the same
files, split and per-image noise seeds are rebuilt as training used (:mod:`datamodules.splits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from datamodules import SAMPLE_ROOT
from datamodules.io.images import read_image
from datamodules.io.pairing import DatasetLayoutError, find_pairs
from datamodules.noise import AffineGaussianNoiseModel, PhysicalNoiseModel
from datamodules.splits import clean_split

INPUTS = ("auto", "simulated", "paired")


@dataclass(frozen=True)
class EvalImage:
    """One evaluated image: its clean target, its real low-dose partner (if any) and its split index.

    ``index`` is the position in the whole split, so its noise seed does not depend on ``max_images``.
    """

    name: str
    clean: Path
    low: Path | None
    index: int

    def load(self, path: Path) -> torch.Tensor:
        """A (1, H, W) float32 tensor in [0, 1]."""
        return torch.from_numpy(read_image(path)[0]).unsqueeze(0)


def data_root(run_data: DictConfig, override: str | None) -> Path:
    root = override if override is not None else run_data.get("root")
    path = Path(str(root)).expanduser().resolve() if root is not None else SAMPLE_ROOT
    if not path.is_dir():
        key = "data_root" if override is not None else "the run's data.root"
        raise DatasetLayoutError(f"{key}: folder not found: {path}")
    return path


def split_images(run_data: DictConfig, root: Path, split: str) -> list[EvalImage]:
    """The images of ``split`` under ``root``, in the layouts the data modules accept.

    ``root/split/{high,low}/`` (real pairs; ``high`` are the clean images), ``root/split/`` of clean
    images, or one flat folder of clean images split by file-name hash like
    :class:`~datamodules.datamodule.SimulatedDataModule` (``data.val_fraction``/``data.test_fraction``).
    """
    split_dir = root / split
    if (split_dir / "high").is_dir() and (split_dir / "low").is_dir():
        return [EvalImage(p.name, p.high, p.low, i) for i, p in enumerate(find_pairs(split_dir))]
    if (root / "train").is_dir() and not split_dir.is_dir():
        raise DatasetLayoutError(f"{split_dir}: split folder not found (split={split})")
    val, test = float(run_data.get("val_fraction", 0.1)), float(run_data.get("test_fraction", 0.1))
    return [EvalImage(p.name, p, None, i) for i, p in enumerate(clean_split(root, split, val, test))]


def subset(images: list[EvalImage], max_images: int | None) -> list[EvalImage]:
    """At most ``max_images`` images, evenly spaced over the split (all when ``None``)."""
    if max_images is None or max_images >= len(images):
        return images
    step = len(images) / max_images
    return [images[int(k * step)] for k in range(max_images)]


def resolve_inputs(inputs: str, run_data: DictConfig) -> str:
    """``simulated`` or ``paired``: ``auto`` follows the run (simulated when it has a noise model)."""
    if inputs not in INPUTS:
        raise ValueError(f"inputs={inputs!r} is unknown; use one of {INPUTS}")
    if inputs != "auto":
        return inputs
    return "simulated" if "noise" in run_data else "paired"


def noise_model(noise_cfg: Any, run_data: DictConfig) -> Any:
    """The low-dose model: ``noise_cfg`` (a ``_target_`` node), else the run's ``data.noise``.

    A run trained on real pairs has no noise model; the physical one (default parameters) is used.
    A simulated run whose ``data.noise`` is null used the affine model, as its data module did. A run
    trained on a family of detectors is evaluated on what the family names (``evaluation_noise()``).
    """
    if noise_cfg is not None:
        return instantiate(noise_cfg)
    if "noise" not in run_data:
        return PhysicalNoiseModel()
    node = run_data.get("noise")
    model = AffineGaussianNoiseModel() if node is None else instantiate(node)
    return model.evaluation_noise() if hasattr(model, "evaluation_noise") else model


def describe_run_data(run_data: DictConfig) -> dict[str, Any]:
    """The run's data settings worth stating in a report (target, root, dose, noise)."""
    container = OmegaConf.to_container(run_data, resolve=True)
    return {k: container.get(k) for k in ("_target_", "root", "dose", "noise", "seed") if k in container}
