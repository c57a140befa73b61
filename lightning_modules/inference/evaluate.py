"""Evaluating a network on a split: denoised images, per-image metrics (CSV) and a summary (JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from datamodules.io.atomic import atomic_write_csv, atomic_write_text
from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageReadError
from lightning_modules.nets.forward import run_network
from lightning_modules.nets.metrics import METRIC_NAMES, image_metrics

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


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation of each metric column over the images.

    An input identical to its target has an infinite PSNR; such values are left out of the mean and
    counted in ``not_finite``, so that ``summary.json`` stays strict JSON (it has no infinity).
    """
    summary = {}
    for column in COLUMNS[1:]:
        values = [row[column] for row in rows if math.isfinite(row[column])]
        mean = sum(values) / len(values) if values else None
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        summary[column] = {"mean": mean, "std": std if values else None}
        if len(values) < len(rows):
            summary[column]["not_finite"] = len(rows) - len(values)
    return summary


def write_results(results_dir: str | Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """Write ``metrics.csv`` (one row per image) and ``summary.json`` (means, stds and ``info``)."""
    results_dir = Path(results_dir)
    atomic_write_csv(results_dir / "metrics.csv", rows, COLUMNS)
    summary = {**info, "images": len(rows), "metrics": summarise(rows)}
    atomic_write_text(results_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def left_out(entry: dict[str, Any]) -> str:
    """What a table cell says of the infinite values its mean left out (``summarise``, ``report.stats.mean_ci``)."""
    return f" ({entry['not_finite']} infinite, left out)" if entry.get("not_finite") else ""


def metrics_table(metrics: dict[str, dict[str, Any]], title: str = "Test split") -> rich.table.Table:  # noqa: F821
    """A rich table with rows ``noisy input`` / ``model`` and columns PSNR / SSIM / MSE (``summarise``'s means)."""
    from rich.table import Table

    def cell(name: str, fmt: str) -> str:
        entry = metrics[name]
        return ("–" if entry["mean"] is None else format(entry["mean"], fmt)) + left_out(entry)

    table = Table(title=title)
    table.add_column("")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_column("MSE", justify="right")
    for label, suffix in (("noisy input", "_noisy"), ("model", "")):
        table.add_row(label, cell(f"psnr{suffix}", ".2f"), cell(f"ssim{suffix}", ".4f"), cell(f"mse{suffix}", ".3e"))
    return table
