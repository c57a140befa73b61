"""Raw forward passes of each inference path on random images: Mpix/s, % of ceiling, peak memory."""

from __future__ import annotations

import time
from typing import Any

import torch

from lightning_modules.benchmark import predictors
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.measure import peak_rss_mb, reset_peak_rss, time_calls, trim_memory
from lightning_modules.benchmark.report import Row


def run_inference(ctx: Context, cfg: Any, device: torch.device | str = "cpu", section: str = "inference") -> list[Row]:
    """``cfg``: ``paths``, ``sizes``, ``batch``, ``repeats``, ``budget_s``, ``compile_size``,
    ``emulated_bf16_size`` (bf16 without hardware support runs at this size only)."""
    device = torch.device(device)
    predictors.check_paths(list(cfg.paths))
    rows = []
    for name in cfg.paths:
        emulated = predictors.emulated_bf16(name, device)
        if emulated:
            sizes = [int(cfg.emulated_bf16_size)]
        elif name == "compile":
            sizes = [int(cfg.compile_size)]
        else:
            sizes = [int(s) for s in cfg.sizes]
        trim_memory()
        start = time.perf_counter()
        try:
            predictor, path = predictors.build(name, ctx.checkpoint, device, int(cfg.batch), ctx.cache_dir)
        except Exception as err:  # noqa: BLE001 - a missing extra or compiler is reported, not fatal
            rows.append(Row(section, name, note=f"skipped: {type(err).__name__}: {err}"))
            continue
        setup_s = time.perf_counter() - start
        for size in sizes:
            x = torch.rand(int(cfg.batch), 1, size, size, device=device)
            trim_memory()
            reset_peak_rss()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                timing = time_calls(
                    lambda predictor=predictor, path=path, x=x: predictors.run(predictor, path, x),
                    int(cfg.repeats),
                    float(cfg.budget_s),
                    device,
                )
            except Exception as err:  # noqa: BLE001 - e.g. torch.compile without a working compiler
                rows.append(Row(section, name, f"{size}²", note=f"failed: {type(err).__name__}: {str(err)[:200]}"))
                break
            rate = x.numel() / 1e6 / timing.median_s
            notes = [path.describe()]
            if emulated:
                notes.append("bf16 emulated (no native bf16): measured at this size only")
            if name == "compile":
                notes.append(f"first call {timing.first_s:.1f} s (compilation)")
            if name == "onnxruntime":
                notes.append(f"export + session {setup_s:.1f} s")
            ctx.results[(section, name, size)] = rate
            rows.append(
                Row(
                    section,
                    name,
                    f"{int(cfg.batch)}×{size}²",
                    rate,
                    "Mpix/s",
                    ctx.pct_of_ceiling(rate, device.type, path.bf16),
                    peak_rss_mb() if device.type == "cpu" else torch.cuda.max_memory_allocated() / 1e6,
                    "; ".join(notes),
                )
            )
            del x
        del predictor
    return rows
