"""``evaluate(cfg)``: the ``scripts/test.py`` logic — rebuild a run's data, load a checkpoint, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from lightning_modules.checkpoint_io import load_network
from lightning_modules.devices import pick_device
from lightning_modules.ensemble import with_tta
from lightning_modules.evaluation import evaluate_dataset, metrics_table, write_results
from lightning_modules.runs import RUN_CONFIG, resolve_checkpoint


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` of ``cfg.run`` (default: the latest run) on ``cfg.split``; return the summary."""
    if str(cfg.precision) not in ("32", "bf16"):
        raise ValueError(f"precision={cfg.precision!r} is unknown; use 32 or bf16")
    ckpt_path, run_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    if run_dir is None:
        raise FileNotFoundError(
            f"ckpt={cfg.ckpt}: not inside a training run folder, so its data config is unknown; pass run=<run folder>"
        )
    run_cfg = OmegaConf.load(run_dir / RUN_CONFIG)
    if cfg.get("data_root") is not None:
        run_cfg.data.root = str(cfg.data_root)
    datamodule = instantiate(run_cfg.data)
    dataset = datamodule.dataset(cfg.split)

    net, hparams = load_network(ckpt_path)
    device = pick_device(str(cfg.device))
    if hparams.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)
    if cfg.get("results_dir"):
        results_dir = Path(cfg.results_dir)
    elif str(cfg.ckpt) == "pretrained":  # never write into the installed package
        results_dir = Path(cfg.paths.output_dir) / "results"
    else:
        results_dir = run_dir / "results"
    rows = evaluate_dataset(
        with_tta(net, cfg.get("tta")), dataset, device=device, image_dir=results_dir / "images" if cfg.write_images else None,
        bf16=str(cfg.precision) == "bf16",
    )
    info = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "run": str(Path(run_dir).resolve()),
        "split": cfg.split,
        "data_root": str(datamodule.root),
        "precision": str(cfg.precision),
        "tta": cfg.get("tta") or False,
        "data_range": 1.0,
    }
    summary = write_results(results_dir, rows, info)
    means = {k: v["mean"] for k, v in summary["metrics"].items()}
    Console().print(metrics_table(means, title=f"{cfg.split} split, {len(rows)} images, {Path(ckpt_path).name}"))
    Console().print(f"results: {results_dir}")
    return summary
