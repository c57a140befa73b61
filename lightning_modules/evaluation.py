"""Evaluating a network on a split: denoised images, per-image metrics (CSV) and a summary (JSON)."""

from __future__ import annotations

import csv
import io
import json
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.atomic import atomic_write_text
from datamodules.image_io import read_image, write_image
from lightning_modules.metrics import METRIC_NAMES, image_metrics

COLUMNS = ["file"] + [f"{m}_noisy" for m in METRIC_NAMES] + list(METRIC_NAMES)


@torch.no_grad()
def evaluate_dataset(
    net: torch.nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    image_dir: str | Path | None = None,
    bf16: bool = False,
) -> list[dict[str, Any]]:
    """Denoise every sample of ``dataset`` (full images); return one metrics row per image.

    With ``image_dir`` the denoised images are written there under their own file names, in the
    format and bit depth of the input image (DICOM keeps its tags).
    """
    device = torch.device(device)
    net = net.to(device).eval()
    rows = []
    for batch in DataLoader(dataset, batch_size=1, shuffle=False):
        low, high = batch["low"].to(device), batch["high"].to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        with autocast:
            pred = net(low)
        pred = pred.float().clamp(0.0, 1.0)
        model, noisy = image_metrics(pred, high), image_metrics(low, high)
        name = batch["name"][0]
        row: dict[str, Any] = {"file": name}
        row.update({f"{m}_noisy": float(noisy[m][0]) for m in METRIC_NAMES})
        row.update({m: float(model[m][0]) for m in METRIC_NAMES})
        rows.append(row)
        if image_dir is not None:
            _, info = read_image(batch["source"][0])  # format, bit depth, polarity and tags of the input
            write_image(Path(image_dir) / name, pred[0, 0].cpu().numpy(), info)
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
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(results_dir / "metrics.csv", buffer.getvalue())
    summary = {**info, "images": len(rows), "metrics": summarise(rows)}
    atomic_write_text(results_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def metrics_table(means: dict[str, float], title: str = "Test split") -> "rich.table.Table":  # noqa: F821
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
