"""What a sweep summary adds when it re-evaluates each job's best checkpoint (``report.py sweep=...
sweep_images=true``): scikit-image's SSIM beside the project's, and one zoomed crop per job.

The crop is the same region of the same test image for every job: the flattest body region
(:func:`~lightning_modules.report.figures.flat_box`) of the job split's middle image, where a dithered
texture or blur shows first. Each job is evaluated on its own run's test split (its data config), in
fp32, with its intensity map when the checkpoint stores one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from lightning_modules.inference.evaluate import evaluate_dataset
from lightning_modules.nets.checkpoints import load_network
from lightning_modules.report.figures import flat_box, save_figure
from lightning_modules.runs.folders import CHECKPOINT_DIR, load_run_config
from lightning_modules.selfsup.fusion import FUSION_KEY, with_fusion
from lightning_modules.selfsup.intensity import MAP_KEY, with_intensity_map

CROP = 48  # pixels of the crop, enlarged in the figure


def evaluate_job(folder: Path, split: str = "test") -> dict[str, Any] | None:
    """Mean PSNR, SSIM (project and scikit-image) of ``folder``'s best checkpoint on its ``split``,
    and the crop images; ``None`` when the job has no best checkpoint or no clean targets."""
    from skimage.metrics import structural_similarity

    checkpoint = folder / CHECKPOINT_DIR / "best.ckpt"
    if not checkpoint.is_file():
        return None
    datamodule = instantiate(load_run_config(folder).data)
    if not getattr(datamodule, "has_targets", True):
        return None
    dataset = datamodule.dataset(split)
    net, hparams = load_network(checkpoint)
    net = with_intensity_map(with_fusion(net, hparams.get(FUSION_KEY)), hparams.get(MAP_KEY))
    middle = len(dataset) // 2
    crop: dict[str, Any] = {}

    def skimage_and_crop(index: int, sample: dict[str, Any], pred: torch.Tensor) -> dict[str, Any]:
        denoised, clean = pred[0, 0].cpu().numpy(), sample["high"][0].numpy()
        if index == middle:
            top, left = flat_box(clean, CROP)
            window = (slice(top, top + CROP), slice(left, left + CROP))
            crop.update(
                name=sample["name"],
                box=(top, left),
                low=sample["low"][0].numpy()[window],
                pred=denoised[window],
                high=clean[window],
            )
        # scikit-image's SSIM with its defaults (7×7 uniform window)
        return {"ssim_skimage": float(structural_similarity(denoised, clean, data_range=1.0))}

    rows = evaluate_dataset(net, dataset, per_image=skimage_and_crop)
    return {
        **{f"test/{m}": float(np.mean([row[m] for row in rows])) for m in ("psnr", "ssim", "ssim_skimage")},
        "images": len(rows),
        "crop": crop,
    }


def plot_job_crops(crops: list[tuple[str, dict[str, Any]]], path: str | Path, columns: int = 4) -> Path:
    """One panel per job (its output in the shared crop), after the low-dose input and the clean crop
    of the first job's image; grey range: the clean crop's 1st to 99th percentile, so texture shows."""
    import matplotlib.pyplot as plt

    first = crops[0][1]
    panels = [(f"low-dose input ({first['name']})", first["low"]), ("clean", first["high"])]
    panels += [(label, crop["pred"]) for label, crop in crops]
    low, high = np.percentile(first["high"], [1, 99])
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, image) in zip(axes.flat, panels):
        ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-3), interpolation="nearest")
        ax.set_title(label, fontsize=8)
    top, left = first["box"]
    return save_figure(fig, path, f"flattest {CROP}×{CROP} region at row {top}, column {left}, enlarged", fontsize=9)
