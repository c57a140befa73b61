"""``resume=auto``: find the unfinished run of the same command and continue from its last.ckpt."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from lightning_modules.runs.folders import CHECKPOINT_DIR, NAMED_CHECKPOINTS, find_runs
from lightning_modules.runs.records import config_fingerprints, read_run_info

RESUME_MODES = ("auto", "never")


def find_resumable(cfg: DictConfig) -> Path | None:
    """The newest unfinished run of ``cfg.name`` with the same config fingerprint and a last.ckpt.

    Runs are searched under ``paths.log_dir/task_name`` (single runs and multirun jobs alike).
    Returns its folder, or ``None`` with ``resume=never`` or when there is nothing to continue.
    """
    mode = str(cfg.get("resume", "auto"))
    if mode not in RESUME_MODES:
        raise ValueError(f"resume={mode!r} is unknown; use auto or never")
    if mode == "never":
        return None
    return _newest_run(cfg, completed=False, checkpoint="last")


def find_completed(cfg: DictConfig) -> Path | None:
    """The newest completed run of ``cfg.name`` with the same config fingerprint and a best.ckpt
    (a finished stage of a recipe in stages, :mod:`lightning_modules.training.stages`)."""
    return _newest_run(cfg, completed=True, checkpoint="best")


def _newest_run(cfg: DictConfig, completed: bool, checkpoint: str) -> Path | None:
    """The newest run under ``paths.log_dir/task_name`` of ``cfg.name`` with ``cfg``'s fingerprint, finished
    or not as ``completed`` says, that holds the named ``checkpoint`` (best or last)."""
    fingerprints = config_fingerprints(cfg)
    for run_dir in reversed(find_runs(Path(cfg.paths.log_dir) / str(cfg.task_name))):
        info = read_run_info(run_dir)
        if (
            info is not None
            and bool(info.get("completed")) == completed
            and info.get("name") == cfg.get("name")
            and info.get("config_fingerprint") in fingerprints
            and (run_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS[checkpoint]).is_file()
        ):
            return run_dir
    return None


def checkpoint_progress(path: str | Path) -> dict[str, int]:
    """Epoch and global step stored in a Lightning checkpoint (a clear error if it is unreadable)."""
    try:
        # mmap: only the counters are read, not the 170 MB of weights and optimizer state
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        from lightning_modules.nets.checkpoints import load_failure

        raise ValueError(
            f"{path}: cannot resume, the checkpoint is unreadable ({load_failure(err)}); use resume=never"
        ) from err
    return {"epoch": int(checkpoint["epoch"]), "global_step": int(checkpoint["global_step"])}
