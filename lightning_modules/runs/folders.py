"""Finding training runs and their checkpoints under the log folder; saving and loading a run's config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text

RUN_CONFIG = "run_config.yaml"  # the resolved config every training run saves in its folder
CHECKPOINT_DIR = "checkpoints"
NAMED_CHECKPOINTS = {"best": "best.ckpt", "last": "last.ckpt"}
# The shipped models: weights and the exact training config, each laid out like a run folder.
# pretrained: images degraded like cxr-pairs (darker, white noise); physical: real detector images
# at a lower dose (same brightness, signal-dependent noise).
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
PHYSICAL_DIR = Path(__file__).resolve().parents[1] / "physical"
PRETRAINED_WEIGHTS = "model.safetensors"


def shipped_models() -> dict[str, Path]:
    """``ckpt=`` name -> folder of each shipped model (read at call time, so tests can swap the folders)."""
    return {"pretrained": PRETRAINED_DIR, "physical": PHYSICAL_DIR}


# Classes that moved when the packages were split into subpackages: run configs saved before name
# them by their old module, and still load.
LEGACY_TARGETS = {
    "datamodules.dose.PhysicalDoseModel": "datamodules.noise.PhysicalNoiseModel",
    "datamodules.dose.GaussianNoiseModel": "datamodules.noise.GaussianNoiseModel",
    "datamodules.degradation.AffineGaussianDegradation": "datamodules.noise.AffineGaussianNoiseModel",
    "lightning_modules.callbacks.BestWeightsExport": "lightning_modules.training.callbacks.BestWeightsExport",
    "lightning_modules.callbacks.ValidationImageGrid": "lightning_modules.training.callbacks.ValidationImageGrid",
    "lightning_modules.hydra_callbacks.JobStatusRecorder": "lightning_modules.runs.hydra.JobStatusRecorder",
}


def find_runs(log_dir: str | os.PathLike) -> list[Path]:
    """Every training run folder under ``log_dir`` (single runs and multirun jobs), oldest first."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return []
    runs = [p.parent for p in log_dir.rglob(RUN_CONFIG)]
    return sorted(runs, key=lambda run: (run / RUN_CONFIG).stat().st_mtime)


def resolve_checkpoint(ckpt: str, run: str | None, log_dir: str | os.PathLike) -> tuple[Path, Path | None]:
    """Turn ``ckpt=pretrained|physical|best|last|<path>`` and an optional ``run=<folder>`` into
    ``(checkpoint, run folder)``.

    ``pretrained`` and ``physical`` are the shipped models. ``best``/``last`` without ``run`` mean the most recent run
    under ``log_dir`` that has that checkpoint. A path may point anywhere; its run folder is found
    when it sits in one.
    """
    shipped = shipped_models()
    if ckpt in shipped:
        path = shipped[ckpt] / PRETRAINED_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(
                f"ckpt={ckpt}: no shipped model at {path}; use ckpt=best, ckpt=last or ckpt=/path/to/x.ckpt"
            )
        return path, shipped[ckpt]
    if ckpt in NAMED_CHECKPOINTS:
        filename = NAMED_CHECKPOINTS[ckpt]
        if run is not None:
            run_dir = Path(run)
            if not (run_dir / RUN_CONFIG).is_file():
                raise FileNotFoundError(f"run={run}: not a training run folder (no {RUN_CONFIG})")
            path = run_dir / CHECKPOINT_DIR / filename
            if not path.is_file():
                raise FileNotFoundError(f"run={run}: has no {CHECKPOINT_DIR}/{filename} (ckpt={ckpt})")
            return path, run_dir
        candidates = [r for r in find_runs(log_dir) if (r / CHECKPOINT_DIR / filename).is_file()]
        if not candidates:
            raise FileNotFoundError(
                f"ckpt={ckpt}: no training run with {CHECKPOINT_DIR}/{filename} under {Path(log_dir).resolve()}; "
                "train first or pass ckpt=/path/to/file.ckpt"
            )
        return candidates[-1] / CHECKPOINT_DIR / filename, candidates[-1]
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: file not found (use best, last or a path to a .ckpt)")
    if run is not None:
        return path, Path(run)
    for parent in path.resolve().parents:
        if (parent / RUN_CONFIG).is_file():
            return path, parent
    return path, None


def rename_targets(node: Any, targets: dict[str, str]) -> Any:
    """``node`` (plain dicts and lists) with each ``_target_`` found in ``targets`` renamed."""
    if isinstance(node, dict):
        return {k: targets.get(v, v) if k == "_target_" else rename_targets(v, targets) for k, v in node.items()}
    if isinstance(node, list):
        return [rename_targets(v, targets) for v in node]
    return node


def load_run_config(path: str | os.PathLike) -> DictConfig:
    """A run's saved ``run_config.yaml`` (a folder or the file), with legacy class names upgraded."""
    path = Path(path)
    if path.is_dir():
        path = path / RUN_CONFIG
    return OmegaConf.create(rename_targets(OmegaConf.to_container(OmegaConf.load(path)), LEGACY_TARGETS))


def save_run_config(cfg: DictConfig, path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Save the fully resolved config (without Hydra's own node) as YAML, atomically."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    for dotted, value in (overrides or {}).items():
        node = container
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(container)))
