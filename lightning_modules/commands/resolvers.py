"""What every script registers before Hydra composes its config: resolvers and the settings' types."""

from __future__ import annotations

from omegaconf import OmegaConf

from lightning_modules.commands.schemas import register_schemas
from lightning_modules.runs.hydra import job_dirname, unique_dir


def best_cpu_precision() -> str:
    """``"bf16-mixed"`` where the CPU runs bf16 natively (oneDNN says so), else ``"32-true"``."""
    from lightning_modules.inference.backends import bf16_native  # torch loads only when a config asks

    return "bf16-mixed" if bf16_native("cpu") else "32-true"


def prepare_hydra() -> None:
    """Register ``${best_cpu_precision:}`` (``conf/trainer/cpu.yaml``), ``${job_dirname:...}`` and
    ``${unique_dir:...}`` (``conf/hydra/default.yaml``), and the structured configs ``conf`` names."""
    register_schemas()
    if not OmegaConf.has_resolver("best_cpu_precision"):
        OmegaConf.register_new_resolver("best_cpu_precision", best_cpu_precision)
    if not OmegaConf.has_resolver("job_dirname"):
        OmegaConf.register_new_resolver("job_dirname", job_dirname)
    if not OmegaConf.has_resolver("unique_dir"):
        OmegaConf.register_new_resolver("unique_dir", unique_dir, use_cache=True)
