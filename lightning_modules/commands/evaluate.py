"""``evaluate(cfg)``, the ``scripts/test.py`` command: rebuild a run's data, load a checkpoint, score a
split against its full-dose images (``train()`` scores the best checkpoint with it too)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from datamodules.io.images import check_bit_depth
from datamodules.io.pixels import ImageReadError
from lightning_modules.inference.backends import pick_device
from lightning_modules.inference.ensemble import DihedralView, with_tta
from lightning_modules.inference.evaluate import evaluate_dataset, metrics_table, write_results
from lightning_modules.inference.failed_list import FAILED_LIST, write_failures
from lightning_modules.inference.input_range import InputCheck, read_input_range
from lightning_modules.nets.checkpoints import load_network
from lightning_modules.nets.forward import check_margin
from lightning_modules.runs.folders import load_run_config, resolve_checkpoint, shipped_models
from lightning_modules.selfsup.fusion import evaluation_fusion, with_fusion
from lightning_modules.selfsup.intensity import (
    MAP_KEY,
    fit_intensity_map,
    intensity_source,
    store_intensity_map,
    with_intensity_map,
)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` of ``cfg.run`` (default: the latest run) on ``cfg.split``; return the summary."""
    if str(cfg.precision) not in ("32", "bf16"):
        raise ValueError(f"precision={cfg.precision!r} is unknown; use 32 or bf16")
    ckpt_path, run_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    if run_dir is None:
        raise FileNotFoundError(
            f"ckpt={cfg.ckpt}: not inside a training run folder, so its data config is unknown; pass run=<run folder>"
        )
    run_cfg = load_run_config(run_dir)
    data_cfg = cfg.data if cfg.get("data") is not None else run_cfg.data  # data=<kind>: other data than the run's
    if cfg.get("data_root") is not None:
        data_cfg.root = str(cfg.data_root)
    # bit_depth=12 (12-bit data in 16-bit files) reads every image of the split so; auto: the run's data.bit_depth
    bit_depth = check_bit_depth(cfg.get("bit_depth"), "bit_depth")
    datamodule = instantiate(data_cfg, **({} if bit_depth == "auto" else {"bit_depth": bit_depth}))
    if not getattr(datamodule, "has_targets", True):
        raise ValueError(
            f"{data_cfg._target_.rsplit('.', 1)[-1]} has no full-dose images to score against; evaluate on pairs: "
            "scripts/test.py ckpt=... data=pairs data.root=<folder with {train,val,test}/{high,low}/>"
        )
    dataset = datamodule.dataset(cfg.split)

    net, hparams = load_network(ckpt_path)
    if cfg.get("eval_margin") is not None:  # e.g. 0: how the network does at bare image edges
        net.eval_margin = check_margin(cfg.eval_margin)
    margin = net.eval_margin
    device = pick_device(str(cfg.device))
    if hparams.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)
    fusion = evaluation_fusion(cfg.get("fusion", "auto"), hparams, datamodule, data_cfg.get("dose"))
    net = with_fusion(net, fusion)  # before the intensity map, which is fitted on what the model returns
    source = intensity_source(hparams, str(cfg.get("intensity", "auto")), str(cfg.split))
    net, intensity = _intensity_map(net, hparams, source, cfg, datamodule, device)
    if cfg.get("save_intensity") and source in ("val", "train"):
        if str(cfg.ckpt) in shipped_models():
            raise ValueError("save_intensity=true: the shipped models are never modified")
        store_intensity_map(ckpt_path, intensity)  # denoise.py ckpt=... applies it from now on
    if cfg.get("results_dir"):
        results_dir = Path(cfg.results_dir)
    elif str(cfg.ckpt) in shipped_models():  # never write into the installed package
        results_dir = Path(cfg.paths.output_dir) / "results"
    else:
        results_dir = run_dir / "results"
    failed: list[tuple[str, str]] = []
    if cfg.get("view") is not None:
        net = DihedralView(net, int(cfg.view))
    check_input = InputCheck(read_input_range(run_dir), lambda line: print(line, file=sys.stderr))
    rows = evaluate_dataset(
        with_tta(net, cfg.get("tta")),
        dataset,
        device=device,
        image_dir=results_dir / "images" if cfg.write_images else None,
        bf16=str(cfg.precision) == "bf16",
        failed=failed,
        per_image=lambda _, sample, __: check_input(sample["name"], sample["low"][0].numpy()) or {},
    )
    check_input.finish()
    write_failures(results_dir, failed)
    if not rows:
        raise ImageReadError(
            f"split={cfg.split}: none of the {len(dataset)} images could be read; see {results_dir / FAILED_LIST}"
        )
    info = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "run": str(Path(run_dir).resolve()),
        "split": cfg.split,
        "data_root": str(datamodule.root),
        "precision": str(cfg.precision),
        "tta": cfg.get("tta") or False,
        "view": cfg.get("view"),
        "eval_margin": margin,
        "data_range": 1.0,
        "failed": [{"file": str(source), "reason": reason} for source, reason in failed],
        "intensity_map": intensity,
        "fusion": fusion,
    }
    summary = write_results(results_dir, rows, info)
    title = f"{cfg.split} split, {len(rows)} images, {Path(ckpt_path).name}"
    if failed:
        title += f" ({len(failed)} failed, not in the means: {results_dir / FAILED_LIST})"
    Console().print(metrics_table(summary["metrics"], title=title))
    if intensity:
        Console().print(
            f"intensity map: {intensity['gain']:.4f} · output + {intensity['offset']:.4f} ({intensity['split']})"
        )
    Console().print(f"results: {results_dir}")
    return summary


def _intensity_map(
    net: torch.nn.Module,
    hparams: dict[str, Any],
    source: str | None,
    cfg: DictConfig,
    datamodule: Any,
    device: torch.device,
) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """``net`` with the intensity map from ``source`` (:func:`intensity_source`: a self-supervised model
    returns low-dose intensities), and that map as plain values (``None`` when there is none)."""
    if source is None:
        return net, None
    if source == "checkpoint":
        stored = hparams[MAP_KEY]
    else:
        stored = fit_intensity_map(net, datamodule.full_images(source), source, device, str(cfg.precision) == "bf16")
    return with_intensity_map(net, stored), stored
