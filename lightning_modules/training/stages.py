"""A training recipe in stages, run by one command: ``stages:`` in a config (``experiment=pretrained``).

Each entry of ``stages`` (an ordered mapping, name -> settings) is merged onto the config of the stage
before it (the first onto the rest of the config) and trained as a run of its own in ``<run>/stages/<k>_<name>/``, starting from the best weights of the
stage before it (the first from ``init_weights``, usually none: random initialisation). With
``resume=auto`` a rerun of the same command skips the stages that a run of the same config completed
and continues the unfinished one from its ``last.ckpt``; ``resume=never`` trains every stage again.
``<run>/stages.json`` lists each stage's folder, steps, training hours and test scores.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text
from lightning_modules.runs.folders import CHECKPOINT_DIR, NAMED_CHECKPOINTS
from lightning_modules.runs.resume import checkpoint_progress, find_completed

STAGES_FILE = "stages.json"
STAGE_DIR = "stages"
STAGE_RECORD = "stage.json"  # in each stage's folder: its training hours (all attempts) and final metrics


def stage_configs(cfg: DictConfig, run_dir: Path) -> list[tuple[str, DictConfig]]:
    """The config of each stage: the rest of ``cfg`` with the settings of this stage and of every stage
    before it merged on top, its own name (``<name>.<stage>``) and folder; ``init_weights`` is filled in
    when the stage before it is done."""
    stages = cfg.get("stages")
    if not isinstance(stages, DictConfig) or not stages:
        raise ValueError(f"stages must map each stage's name to its settings, got {OmegaConf.to_yaml(stages)!r}")
    base = OmegaConf.to_container(cfg, resolve=False)
    base["stages"] = None
    previous = OmegaConf.create(base)
    configs = []
    for k, (stage, settings) in enumerate(stages.items(), start=1):
        if settings is not None and not isinstance(settings, DictConfig):
            raise ValueError(f"stages.{stage} must be a mapping of settings, got {settings!r}")
        if settings is not None and ("stages" in settings or "paths" in settings or "name" in settings):
            raise ValueError(f"stages.{stage} may not set stages, paths or name (the stage runner sets them)")
        previous = merged = OmegaConf.merge(previous, settings or {})
        merged = merged.copy()
        merged.name = f"{cfg.name}.{stage}"
        merged.paths.output_dir = str(run_dir / STAGE_DIR / f"{k}_{stage}")
        configs.append((str(stage), merged))
    return configs


def train_stages(cfg: DictConfig, train_one: Callable[[DictConfig], dict[str, float]]) -> dict[str, float]:
    """Run ``cfg.stages`` in order with ``train_one`` (:func:`~lightning_modules.commands.train.train`);
    return the last stage's metrics."""
    run_dir = Path(cfg.paths.output_dir)
    resume = str(cfg.get("resume", "auto"))
    init_weights = cfg.get("init_weights")
    record: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    for k, (stage, stage_cfg) in enumerate(stage_configs(cfg, run_dir), start=1):
        stage_cfg.init_weights = init_weights
        done = find_completed(stage_cfg) if resume == "auto" else None
        if done is not None:
            print(f"stage {k} ({stage}): completed in {done}; skipped (resume=never trains it again)", file=sys.stderr)
            stage_dir = done
            metrics = _read_record(done)["metrics"]
        else:
            print(f"stage {k} ({stage}): training in {stage_cfg.paths.output_dir}", file=sys.stderr, flush=True)
            started, metrics = time.monotonic(), {}
            try:
                metrics = train_one(stage_cfg)  # resume=auto moves paths.output_dir to an unfinished run it continues
            finally:  # an interrupted attempt's hours count too
                _add_to_record(Path(stage_cfg.paths.output_dir), (time.monotonic() - started) / 3600, metrics)
            stage_dir = Path(stage_cfg.paths.output_dir)
        best = stage_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS["best"]
        if not best.is_file():
            raise FileNotFoundError(f"stage {k} ({stage}): no {best} to start the next stage from")
        init_weights = str(best.resolve())
        last = stage_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS["last"]
        record.append(
            {
                "stage": stage,
                "folder": str(stage_dir.resolve()),
                "steps": checkpoint_progress(last)["global_step"] if last.is_file() else None,
                "hours": round(_read_record(stage_dir)["hours"], 6),  # a tiny stage takes well under 1 s
                "test": {key: value for key, value in metrics.items() if key.startswith("test/")},
            }
        )
        atomic_write_text(run_dir / STAGES_FILE, json.dumps(record, indent=2) + "\n")
    return metrics


def _read_record(stage_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((stage_dir / STAGE_RECORD).read_text())
    except (OSError, ValueError):
        return {"hours": 0.0, "metrics": {}}


def _add_to_record(stage_dir: Path, hours: float, metrics: dict[str, float]) -> None:
    if not stage_dir.is_dir():
        return
    record = _read_record(stage_dir)
    record["hours"] += hours
    record["metrics"] = metrics or record["metrics"]
    atomic_write_text(stage_dir / STAGE_RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
