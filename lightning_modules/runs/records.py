"""What each training run records beside its checkpoints: ``run_info.json``.

Config fingerprint (to recognise a rerun of the same command), git commit, library versions, the
data fingerprint (hash of the file list) and the history of attempts (started, resumed, completed).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text
from lightning_modules.nets.forward import DEFAULT_EVAL_MARGIN
from lightning_modules.runs.folders import LEGACY_TARGETS, rename_targets
from lightning_modules.selfsup.config import SUPERVISED

RUN_INFO = "run_info.json"
REPO_DIR = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "torchmetrics", "segmentation-models-pytorch", "numpy")
# Keys that say where a run writes or whether it resumes, not what it trains.
NOT_FINGERPRINTED = ("hydra", "paths", "resume", "ckpt_path", "preflight")
# Config nodes added after runs had started (dotted paths), with the value every earlier run had in
# effect: a node equal to it is left out of the hash, so those runs keep their fingerprint (and resume).
ADDED_DEFAULTS = {
    "training": SUPERVISED,
    "model.eval_margin": DEFAULT_EVAL_MARGIN,
    "model.input_block": False,
    "data.patch_schedule": None,
    "data.bit_depth": "auto",
    "data.train_subset": None,
    "stages": None,
    "optim.step_epochs": 10,
    "optim.gamma": 0.5,
    "optim.patience": 5,
    "optim.monitor": None,
    "optim.mode": None,
    # declared by lightning_modules/commands/schemas.py: present in every config since then
    "data.train_noise": None,
    "fitted_noise": None,
    "trainer.max_steps": -1,
    "trainer.val_check_interval": None,
    "trainer.overfit_batches": 0.0,
    "trainer.strategy": "auto",
    "trainer.num_nodes": 1,
    "trainer.sync_batchnorm": False,
}


def config_fingerprint(cfg: DictConfig, targets: dict[str, str] | None = None) -> str:
    """Hash of the unresolved config without output locations: equal for reruns of one command.

    ``targets`` renames ``_target_`` classes before hashing (to recognise runs saved under old names).
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in NOT_FINGERPRINTED:
        container.pop(key, None)
    for key, default in ADDED_DEFAULTS.items():
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            node.pop(leaf)
    if targets:
        container = rename_targets(container, targets)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_fingerprints(cfg: DictConfig) -> set[str]:
    """The fingerprint of ``cfg`` and, for runs started before the classes moved, its legacy one."""
    legacy = {new: old for old, new in LEGACY_TARGETS.items()}
    return {config_fingerprint(cfg), config_fingerprint(cfg, legacy)}


def data_fingerprint(root: str | os.PathLike) -> dict[str, Any]:
    """Hash of every file's relative path and size under ``root`` (a cheap check for changed data)."""
    root = Path(root)
    digest, count = hashlib.sha256(), 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
        count += 1
    return {"root": str(root.resolve()), "files": count, "sha256": digest.hexdigest()}


def git_commit() -> dict[str, Any] | None:
    """The project's commit and whether the working tree had changes; ``None`` outside a checkout."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def commit_label(short: bool = False) -> str:
    """The commit as text: ``<commit>``, with `` (uncommitted changes)`` when dirty; ``unknown`` outside git."""
    state = git_commit()
    if state is None:
        return "unknown"
    commit = state["commit"][:7] if short else state["commit"]
    return f"{commit} (uncommitted changes)" if state["dirty"] else commit


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's and each installed package's version ("not installed" where missing)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return None


def _write(run_dir: Path, info: dict[str, Any]) -> None:
    atomic_write_text(run_dir / RUN_INFO, json.dumps(info, indent=2) + "\n")


def start_attempt(
    run_dir: str | os.PathLike,
    cfg: DictConfig,
    data_root: str | os.PathLike,
    resumed_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create or extend ``run_info.json`` for a new attempt of this run."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir) or {
        "name": cfg.get("name"),
        "config_fingerprint": config_fingerprint(cfg),
        "data": data_fingerprint(data_root),
        "attempts": [],
        "completed": False,
    }
    info["attempts"].append(
        {"started": _now(), "git": git_commit(), "versions": versions(), "resumed_from": resumed_from}
    )
    _write(run_dir, info)
    return info


def mark_completed(run_dir: str | os.PathLike) -> None:
    info = read_run_info(run_dir)
    if info is not None:
        info["completed"] = True
        info["attempts"][-1]["completed"] = _now()
        _write(Path(run_dir), info)
