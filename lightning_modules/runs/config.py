"""Config helpers shared by the entry points: resolvers, early validation, saving the resolved config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text
from datamodules.patch_schedule import check_step_budget, parse_patch_schedule
from lightning_modules.nets.losses import LOSSES
from lightning_modules.runs.schema import TRAIN_KEYS, check_types
from lightning_modules.training.optim import check_optim_config


def _positive(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_none:
        return
    if value is None or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")


def check_train_config(cfg: DictConfig) -> None:
    """Fail fast, naming the key, on values that would only break later (after minutes of work)."""
    check_types(cfg, TRAIN_KEYS)
    check_optim_config(OmegaConf.to_container(cfg.optim, resolve=True))
    _positive(cfg, "data.batch_size")
    _positive(cfg, "data.patch_size", allow_none=True)
    if cfg.loss.get("name") not in LOSSES:
        raise ValueError(f"loss.name={cfg.loss.get('name')!r} is unknown; choose one of {sorted(LOSSES)}")
    patch = cfg.data.get("patch_size")
    if patch is not None and patch % 32:
        raise ValueError(f"data.patch_size={patch} must be a multiple of 32 (the network's downsampling factor)")
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None and max_epochs != -1 and max_epochs < 1:
        raise ValueError(f"trainer.max_epochs must be >= 1 (or -1 for no limit), got {max_epochs}")
    if has_patch_schedule(cfg):
        data = OmegaConf.to_container(cfg.data, resolve=True)
        parse_patch_schedule(data["patch_schedule"], data.get("patch_size"), data["batch_size"])
        check_step_budget(cfg.trainer.get("max_steps"), max_epochs)


def has_patch_schedule(cfg: DictConfig) -> bool:
    """Whether ``data.patch_schedule`` changes the training patches during the run (the trainer then
    rebuilds the training loader every epoch)."""
    return cfg.data.get("patch_schedule") is not None


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
