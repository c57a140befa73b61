"""Config helpers shared by the entry points: resolvers, early validation, saving the resolved config."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.atomic import atomic_write_text
from lightning_modules.losses import LOSSES
from lightning_modules.optim import check_optim_config


def best_cpu_precision() -> str:
    """``"bf16-mixed"`` where the CPU runs bf16 natively (oneDNN says so), else ``"32-true"``."""
    from lightning_modules.inference_paths import bf16_native

    return "bf16-mixed" if bf16_native("cpu") else "32-true"


# Most file systems refuse names over 255 bytes; a multirun job folder named after many overrides
# would fail to be created.
MAX_JOB_DIRNAME = 160


def job_dirname(num: int, overrides: str) -> str:
    """``<num>_<overrides>`` for a multirun job folder, shortened with a hash when too long."""
    name = f"{num}_{overrides}" if overrides else str(num)
    if len(name.encode()) <= MAX_JOB_DIRNAME:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:8]
    return f"{name.encode()[:MAX_JOB_DIRNAME - 10].decode(errors='ignore')}_{digest}"


def register_resolvers() -> None:
    """Register ``${best_cpu_precision:}`` (``conf/trainer/cpu.yaml``) and ``${job_dirname:...}``
    (``conf/hydra/default.yaml``)."""
    if not OmegaConf.has_resolver("best_cpu_precision"):
        OmegaConf.register_new_resolver("best_cpu_precision", best_cpu_precision)
    if not OmegaConf.has_resolver("job_dirname"):
        OmegaConf.register_new_resolver("job_dirname", job_dirname)


def _positive(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_none:
        return
    if value is None or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")


def check_train_config(cfg: DictConfig) -> None:
    """Fail fast, naming the key, on values that would only break later (after minutes of work)."""
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


def ensure_writable_dir(path: str | Path, key: str) -> Path:
    """Create ``path`` if needed and check it can be written; the error names ``key`` and the path."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"{key}: cannot write to {path} ({err.strerror})") from err
    return path


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
