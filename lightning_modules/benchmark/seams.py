"""Tiled against whole-image inference on real radiographs: how far tiling moves any pixel.

``sections=[seams]`` runs each inference path on whole images (the reference) and then tiled with each
case of ``seams.cases`` (``tile/overlap/margin/align``, or ``default``: denoise.py's overlap and margin
with 1024² tiles, smaller than any the defaults choose), and reports the largest and mean absolute
difference and the share of pixels off by more than 2/255, each the worst over the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from datamodules import SAMPLE_ROOT
from datamodules.io.images import read_image
from lightning_modules.benchmark import predictors
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.report import Row
from lightning_modules.inference.tile_plan import margin_for
from lightning_modules.inference.tiling import count_tiles, sliding_window
from lightning_modules.nets.forward import run_network

TOLERANCE = 2 / 255
DEFAULT_FLOOR = 1024  # the defaults never tile finer (tests/test_tile_plan.py), so this bounds every default plan


def radiographs(root: str | None, count: int, size: int) -> tuple[list[tuple[str, torch.Tensor]], str]:
    """``count`` real low-dose radiographs bicubic-resized to ``size``²: ``root/test/low`` when it exists,
    else the embedded sample test images with the measured cxr-pairs degradation simulated (fixed seeds)."""
    from datamodules.io.pairing import list_images

    folder = Path(root).expanduser() / "test" / "low" if root else None
    if folder is not None and folder.is_dir():
        files = list_images(folder)[:count]
        images = [(p.name, torch.from_numpy(read_image(p)[0])) for p in files]
        source = f"{folder}"
    else:
        from datamodules.noise import AffineGaussianNoiseModel

        degradation = AffineGaussianNoiseModel()
        files = list_images(SAMPLE_ROOT / "test")[:count]
        images = [
            (p.name, degradation.simulate(torch.from_numpy(read_image(p)[0]), 1.0, torch.Generator().manual_seed(i)))
            for i, p in enumerate(files)
        ]
        source = "the embedded sample test images, cxr-pairs degradation simulated"
    resized = [(name, resize(image, size)) for name, image in images]
    return resized, f"{len(resized)} low-dose radiographs of {source}, bicubic-resized to {size}²"


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """A (H, W) image bicubic-resized to (size, size), clamped to [0, 1]."""
    return F.interpolate(image[None, None], size=(size, size), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)


@dataclass(frozen=True)
class SeamCase:
    """One tiling to compare: ``tile`` side, ``overlap``, ``margin``, ``align`` (1: tiles start anywhere)."""

    label: str
    tile: int
    overlap: int
    margin: int
    align: int


def parse_case(text: str, defaults: Any) -> SeamCase:
    """``tile/overlap/margin/align`` or ``default`` (denoise.py's overlap and margin, 1024² tiles)."""
    if str(text) == "default":
        overlap = int(defaults.overlap)
        margin = margin_for(defaults.get("margin", "auto"), overlap)
        return SeamCase(f"default ({DEFAULT_FLOOR}/{overlap}/{margin}/32)", DEFAULT_FLOOR, overlap, margin, 32)
    tile, overlap, margin, align = (int(v) for v in str(text).split("/"))
    return SeamCase(f"{tile}/{overlap}/{margin}/{align}", tile, overlap, margin, align)


def differences(tiled: torch.Tensor, whole: torch.Tensor) -> dict[str, float]:
    """Max and mean |tiled − whole| and the % of pixels over 2/255, both clamped to [0, 1] as denoise.py writes them."""
    diff = (tiled.clamp(0, 1) - whole.clamp(0, 1)).abs()
    return {
        "max": float(diff.max()),
        "mean": float(diff.mean()),
        "pct_over": 100 * float((diff > TOLERANCE).float().mean()),
    }


def run_seams(ctx: Context, cfg: Any) -> list[Row]:
    """``cfg``: ``root``, ``images``, ``size``, ``paths``, ``cases``."""
    predictors.check_paths(list(cfg.paths))
    defaults = predictors.denoise_defaults(ctx.repo)
    images, source = radiographs(cfg.root, int(cfg.images), int(cfg.size))
    ctx.notes.append(
        f"Seams: {source}; tile/overlap/margin/align, align 32 = tiles start on multiples of 32; "
        "the whole image in one pass is each path's reference."
    )
    rows, wholes = [], {}
    for name in cfg.paths:
        if predictors.emulated_bf16(name, "cpu"):
            rows.append(Row("seams", name, note="skipped: bf16 is emulated on this CPU"))
            continue
        predictor, path = predictors.build(name, ctx.checkpoint, "cpu", 1, ctx.cache_dir)
        wholes[name] = [
            run_network(predictor, image[None, None], path.bf16, path.channels_last)[0, 0] for _, image in images
        ]
        for text in cfg.cases:
            case = parse_case(text, defaults)
            worst = {"max": 0.0, "mean": 0.0, "pct_over": 0.0}
            for (_, image), whole in zip(images, wholes[name]):
                tiled = sliding_window(
                    image,
                    predictor,
                    tile=case.tile,
                    overlap=case.overlap,
                    margin=case.margin,
                    align=case.align,
                    batch_size=1,
                    bf16=path.bf16,
                    channels_last=path.channels_last,
                )
                found = differences(tiled, whole)
                worst = {k: max(worst[k], found[k]) for k in worst}
            tiles = count_tiles(int(cfg.size), int(cfg.size), case.tile, case.overlap, case.align)
            ctx.results[("seams", name, case.label)] = worst
            rows.append(
                Row(
                    "seams",
                    f"{name}, {case.label}",
                    f"{len(images)}×{cfg.size}²",
                    worst["max"],
                    "max |tiled − whole|",
                    None,
                    None,
                    f"{path.describe()}; {tiles} tiles; mean {worst['mean']:.1e}; "
                    f"{worst['pct_over']:.3f} % of pixels > 2/255 (worst image)",
                )
            )
        del predictor
    reference = "fast" if "fast" in wholes else "fp32" if "fp32" in wholes else None
    for name in (n for n in wholes if reference and n != reference):
        found = max(differences(a, b)["max"] for a, b in zip(wholes[name], wholes[reference]))
        rows.append(
            Row(
                "seams",
                f"{name} whole vs {reference} whole",
                f"{len(images)}×{cfg.size}²",
                found,
                "max |Δ|",
                note="what the paths' precisions differ by on whole images, no tiling",
            )
        )
    return rows
