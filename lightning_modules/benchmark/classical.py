"""Classical baselines' speed: NLM (scikit-image) and BM3D (optional ``bm3d`` package), seconds per Mpix."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.quality import test_pairs
from lightning_modules.benchmark.report import Row
from lightning_modules.classical.baselines import BASELINES, DESCRIPTIONS, OPTIONAL_PACKAGE

METHODS = {name: (DESCRIPTIONS[name], OPTIONAL_PACKAGE.get(name), BASELINES[name][1]) for name in BASELINES}


def run_classical(ctx: Context, cfg: Any, quality_cfg: Any) -> list[Row]:
    """``cfg``: ``methods``, ``images`` (how many test images to time on). Same test images as quality."""
    from skimage.restoration import estimate_sigma

    images, source = test_pairs(quality_cfg.root, int(cfg.images))
    lows = [low.numpy().astype(np.float64) for _, low, _ in images]
    mpix = sum(img.size for img in lows) / 1e6
    rows = []
    for name in cfg.methods:
        if name not in METHODS:
            raise ValueError(f"baselines.methods: {name!r} is unknown; choose from {', '.join(METHODS)}")
        label, package, method = METHODS[name]
        if package and importlib.util.find_spec(package) is None:
            rows.append(Row("baselines", name, note=f"not installed (pip install 'xray-denoise[{package}]')"))
            continue
        start = time.perf_counter()
        for low in lows:
            method(low, float(estimate_sigma(low)))
        seconds = time.perf_counter() - start
        ctx.results[("baselines", name)] = seconds / mpix
        rows.append(
            Row(
                "baselines",
                name,
                f"{len(lows)} × {lows[0].shape[0]}×{lows[0].shape[1]}",
                seconds / mpix,
                "s/Mpix",
                None,
                None,
                f"{label}; σ estimated per image",
            )
        )
    network = _network_rate(ctx)
    if network:
        rows.append(
            Row(
                "baselines",
                "network, default path",
                "",
                1 / network,
                "s/Mpix",
                None,
                None,
                "raw forward at the smallest inference size, for comparison",
            )
        )
    return rows


def _network_rate(ctx: Context) -> float | None:
    rates = sorted(
        (key[2], rate)
        for key, rate in ctx.results.items()
        if isinstance(key, tuple) and key[:2] == ("inference", "default")
    )
    return rates[0][1] if rates else None
