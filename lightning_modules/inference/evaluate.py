"""Evaluating a network on a split: denoised images, per-image metrics (CSV), a summary (JSON), and
``evaluate(cfg)``, the ``scripts/test.py`` logic (rebuild a run's data, load a checkpoint, evaluate)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from torch.utils.data import Dataset

from datamodules.io.atomic import atomic_write_csv, atomic_write_text
from datamodules.io.images import check_bit_depth, read_image, write_image
from datamodules.io.pixels import ImageReadError
from lightning_modules.inference.backends import pick_device
from lightning_modules.inference.ensemble import DihedralView, with_tta
from lightning_modules.inference.failed_list import FAILED_LIST, write_failures
from lightning_modules.inference.input_range import InputCheck, read_input_range
from lightning_modules.nets.checkpoints import load_network
from lightning_modules.nets.forward import check_margin, run_network
from lightning_modules.nets.metrics import METRIC_NAMES, image_metrics
from lightning_modules.runs.folders import load_run_config, resolve_checkpoint, shipped_models
from lightning_modules.selfsup.fusion import evaluation_fusion, with_fusion
from lightning_modules.selfsup.intensity import (
    MAP_KEY,
    fit_intensity_map,
    intensity_source,
    store_intensity_map,
    with_intensity_map,
)

COLUMNS = ["file"] + [f"{m}_noisy" for m in METRIC_NAMES] + list(METRIC_NAMES)


@torch.no_grad()
def evaluate_dataset(
    net: torch.nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    image_dir: str | Path | None = None,
    bf16: bool = False,
    failed: list[tuple[str, str]] | None = None,
    per_image: Callable[[int, dict[str, Any], torch.Tensor], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Denoise every sample of ``dataset`` (full images); return one metrics row per image.

    ``per_image(index, sample, prediction)`` may add its own values to each row (e.g. another metric).

    With ``image_dir`` the denoised images are written there under their own file names, in the
    format and bit depth of the input image (DICOM keeps its tags). An image that cannot be read
    (or whose result cannot be written) is appended to ``failed`` as ``(file, reason)`` and the others
    go on; without a ``failed`` list the first such error is raised.
    """
    device = torch.device(device)
    net = net.to(device).eval()
    rows = []
    for index in range(len(dataset)):
        try:
            sample = dataset[index]
        except ImageReadError as err:
            if failed is None:
                raise
            failed.append((getattr(dataset, "source", str)(index), str(err)))
            continue
        low, high = sample["low"][None].to(device), sample["high"][None].to(device)
        pred = run_network(net, low, bf16).clamp(0.0, 1.0)
        model, noisy = image_metrics(pred, high), image_metrics(low, high)
        row: dict[str, Any] = {"file": sample["name"]}
        row.update({f"{m}_noisy": float(noisy[m][0]) for m in METRIC_NAMES})
        row.update({m: float(model[m][0]) for m in METRIC_NAMES})
        if per_image is not None:
            row.update(per_image(index, sample, pred))
        rows.append(row)
        if image_dir is not None:
            try:
                # format, bit depth, polarity and tags of the input, read as the dataset read it
                _, info = read_image(sample["source"], getattr(dataset, "bit_depth", None))
                write_image(Path(image_dir) / sample["name"], pred[0, 0].cpu().numpy(), info)
            except (OSError, ValueError) as err:
                if failed is None:
                    raise
                failed.append((sample["source"], f"result not written: {err}"))
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each metric column over the images."""
    summary = {}
    for column in COLUMNS[1:]:
        values = [row[column] for row in rows]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        summary[column] = {"mean": mean, "std": std}
    return summary


def write_results(results_dir: str | Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """Write ``metrics.csv`` (one row per image) and ``summary.json`` (means, stds and ``info``)."""
    results_dir = Path(results_dir)
    atomic_write_csv(results_dir / "metrics.csv", rows, COLUMNS)
    summary = {**info, "images": len(rows), "metrics": summarise(rows)}
    atomic_write_text(results_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def metrics_table(means: dict[str, float], title: str = "Test split") -> rich.table.Table:  # noqa: F821
    """A rich table with rows ``noisy input`` / ``model`` and columns PSNR / SSIM / MSE."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_column("MSE", justify="right")
    for label, suffix in (("noisy input", "_noisy"), ("model", "")):
        table.add_row(
            label,
            f"{means[f'psnr{suffix}']:.2f}",
            f"{means[f'ssim{suffix}']:.4f}",
            f"{means[f'mse{suffix}']:.3e}",
        )
    return table


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
    means = {k: v["mean"] for k, v in summary["metrics"].items()}
    title = f"{cfg.split} split, {len(rows)} images, {Path(ckpt_path).name}"
    if failed:
        title += f" ({len(failed)} failed, not in the means: {results_dir / FAILED_LIST})"
    Console().print(metrics_table(means, title=title))
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
