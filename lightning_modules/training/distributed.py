"""What training does differently when it runs as several processes (Lightning DDP).

Lightning's ``ddp`` strategy starts the extra ranks by running the same command line again. That is
what makes a single ``scripts/train.py trainer=ddp_cpu`` run work, and what breaks a Hydra multirun
with the basic launcher: every extra rank re-runs the whole sweep on its own, so the ranks of one
job may train different configs. :func:`check_distributed_launch` refuses that combination before
any work starts.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

# Strategies whose extra ranks are started in-process (spawn/fork), not by re-running the script.
IN_PROCESS_LAUNCH = ("spawn", "fork", "notebook")


def _reruns_command_line(strategy: Any) -> bool:
    if isinstance(strategy, str):
        name = strategy
    elif hasattr(strategy, "get"):  # a config node that instantiates a strategy, e.g. DDPStrategy
        name = f"{strategy.get('_target_', '')} {strategy.get('start_method', '')}"
    else:
        name = type(strategy).__name__
    name = name.lower()
    return "ddp" in name and not any(word in name for word in IN_PROCESS_LAUNCH)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _ranks_started_externally() -> bool:
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def check_distributed_launch(cfg: DictConfig) -> None:
    """Refuse ``trainer.strategy=ddp`` inside a multirun when Lightning would start the ranks itself.

    Allowed: ddp in single runs, ``ddp_spawn`` anywhere, and ddp where a cluster scheduler starts
    one process per rank (SLURM tasks via ``hydra/launcher=submitit_slurm``, ``torchrun``).
    """
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", 1)
    several = trainer.get("num_nodes", 1) != 1 or not (isinstance(devices, int) and devices == 1)
    if not (several and _reruns_command_line(trainer.get("strategy", "auto")) and _in_multirun()):
        return
    if _ranks_started_externally():
        return
    raise ValueError(
        f"trainer.strategy={trainer.get('strategy')} cannot run inside a multirun (-m) with this launcher: "
        "Lightning starts each extra rank by re-running the whole command line, sweep included, so the "
        "ranks of one job would train different configs. Use trainer.strategy=ddp_spawn for sweeps on "
        "one machine, hydra/launcher=slurm (one SLURM task per rank) on a cluster, or single runs."
    )


def finish_process_group() -> None:
    """Wait for every rank, then close the process group (avoids aborts at exit of CPU DDP runs)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
