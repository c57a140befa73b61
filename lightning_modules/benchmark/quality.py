"""Does a fast path cost quality? Mean PSNR of each inference path on a test split, against fp32 eager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from datamodules import SAMPLE_ROOT
from datamodules.io.images import read_image
from lightning_modules.benchmark import predictors
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.report import Row
from lightning_modules.inference.tile_plan import margin_for, plan_for
from lightning_modules.inference.tiling import sliding_window
from lightning_modules.nets.metrics import image_metrics

SAMPLE_TEST = SAMPLE_ROOT / "test"


def test_pairs(root: str | None, max_images: int | None) -> tuple[list[tuple[str, torch.Tensor, torch.Tensor]], str]:
    """``[(name, low, high)]`` of ``root/test`` (paired layout) or, when that is missing, of the
    embedded sample test split with the affine low-dose model simulated at a fixed seed."""
    split = Path(root).expanduser() / "test" if root else None
    images = []
    if split is not None and (split / "high").is_dir():
        from datamodules.io.pairing import find_pairs

        for pair in find_pairs(split)[:max_images]:
            low, high = read_image(pair.low)[0], read_image(pair.high)[0]
            images.append((pair.name, torch.from_numpy(low), torch.from_numpy(high)))
        return images, f"{len(images)} real pairs of {split}"
    from datamodules.io.pairing import list_images
    from datamodules.noise import AffineGaussianNoiseModel

    degradation = AffineGaussianNoiseModel()
    for index, path in enumerate(list_images(SAMPLE_TEST)[:max_images]):
        high = torch.from_numpy(read_image(path)[0])
        low = degradation.simulate(high, 1.0, torch.Generator().manual_seed(index))
        images.append((path.name, low, high))
    return images, f"{len(images)} embedded sample test images, affine low-dose model simulated (no {split})"


def run_quality(ctx: Context, cfg: Any) -> list[Row]:
    """``cfg``: ``root``, ``max_images``, ``paths`` (``fp32`` first: the reference), ``emulated_images``.
    Images are tiled as denoise.py's defaults tile them."""
    names = ["fp32"] + [n for n in cfg.paths if n != "fp32"]
    predictors.check_paths(names)
    images, source = test_pairs(cfg.root, cfg.max_images)
    defaults = predictors.denoise_defaults(ctx.repo)
    overlap = int(defaults.overlap)
    margin = margin_for(defaults.get("margin", "auto"), overlap)
    ctx.notes.append(
        f"Quality: {source}; tiled as denoise.py's defaults tile them (overlap {overlap}, margin {margin})."
    )
    reference: dict[str, torch.Tensor] = {}
    ref_psnr: dict[str, float] = {}
    rows = []
    for name in names:
        try:
            predictor, path = predictors.build(name, ctx.checkpoint, "cpu", 1, ctx.cache_dir)
        except Exception as err:  # noqa: BLE001 - a missing extra is reported, not fatal
            rows.append(Row("quality", name, note=f"skipped: {type(err).__name__}: {err}"))
            continue
        subset = images[: int(cfg.emulated_images)] if predictors.emulated_bf16(name, "cpu") else images
        psnr, max_diff = {}, 0.0
        for image_name, low, high in subset:
            plan = plan_for(*low.shape, path, float(defaults.memory_gb), overlap, defaults.tile, defaults.batch_size)
            pred = sliding_window(
                low,
                predictor,
                tile=plan.tile,
                overlap=overlap,
                margin=margin,
                batch_size=plan.batch_size,
                bf16=path.bf16,
                channels_last=path.channels_last,
            ).clamp_(0.0, 1.0)
            psnr[image_name] = float(image_metrics(pred[None, None], high[None, None])["psnr"][0])
            if name == "fp32":
                reference[image_name], ref_psnr[image_name] = pred, psnr[image_name]
            else:
                max_diff = max(max_diff, float((pred - reference[image_name]).abs().max()))
        mean = sum(psnr.values()) / len(psnr)
        delta = mean - sum(ref_psnr[k] for k in psnr) / len(psnr)
        ctx.results[("quality", name)] = {
            "psnr": mean,
            "delta_db": delta,
            "images": len(psnr),
            "max_abs_diff": max_diff,
        }
        note = path.describe() + (
            f"; Δ vs fp32 {delta:+.4f} dB, max |Δ| {max_diff:.1e}" if name != "fp32" else "; reference"
        )
        if len(subset) < len(images):
            note += f"; bf16 emulated: first {len(subset)} images only"
        rows.append(Row("quality", name, f"{len(psnr)} images", mean, "dB PSNR", None, None, note))
        del predictor
    return rows
