"""``scripts/denoise.py`` end to end in a fresh process (read → tiles → write, start-up included),
its peak resident memory, and how fast the command starts."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from datamodules.io.images import ImageInfo, write_image
from lightning_modules.benchmark import predictors
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.measure import ProcessResult, run_process
from lightning_modules.benchmark.report import Row
from lightning_modules.inference.tile_plan import plan_for

SUMMARY = re.compile(r"([\d.]+) Mpix, ([\d.]+) s,")


def test_image(ctx: Context, size: int) -> Path:
    """A 16-bit PNG chest phantom of ``size``², written once into ``ctx.image_dir`` and reused."""
    path = ctx.image_dir / f"phantom_{size}.png"
    if not path.is_file():
        from datamodules.phantom import chest_phantom

        write_image(path, chest_phantom(size, seed=0).numpy(), ImageInfo(16, ".png"))
    return path


def child_env(ctx: Context, bytecode_cache: bool = True) -> dict[str, str]:
    """The environment of every measured process: ONNX exports cached inside the run folder and,
    with ``bytecode_cache``, Python bytecode cached as a normal install does (even where the
    environment sets PYTHONDONTWRITEBYTECODE: compiling torch's sources costs seconds per start)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(ctx.run_dir / "xdg_cache")}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(ctx.image_dir.parent / "pycache")
    return env


def run_denoise(
    ctx: Context, image: Path, name: str, overrides: list[str], timeout_s: float, bytecode_cache: bool = True
) -> ProcessResult:
    out_dir = ctx.run_dir / "denoised" / f"{name}_{image.stem}"
    command = [
        sys.executable,
        str(ctx.repo / "scripts" / "denoise.py"),
        f"input={image}",
        f"output={out_dir}",
        f"ckpt={ctx.checkpoint}",
        "progress=false",
        "overwrite=true",
        "device=cpu",
        f"hydra.run.dir={ctx.run_dir / 'denoise_runs' / f'{name}_{image.stem}'}",
        *overrides,
    ]
    return run_process(command, cwd=ctx.repo, env=child_env(ctx, bytecode_cache), timeout_s=timeout_s)


def _prepare_onnx(ctx: Context) -> None:
    """Export the ONNX model into the denoise processes' cache, so their timings are run only."""
    predictors.build(
        "onnxruntime", ctx.checkpoint, "cpu", cache_dir=ctx.run_dir / "xdg_cache" / "xray-denoise" / "onnx"
    )


def run_tiled(ctx: Context, cfg: Any) -> list[Row]:
    """``cfg``: ``sizes``, ``paths``, ``up_to`` (path -> the largest size it runs at; others run at every
    size), ``emulated_bf16_size`` (bf16 without native support runs on one image of this size only),
    ``timeout_s``. denoise.py tiles with its own defaults."""
    predictors.check_paths(list(cfg.paths))
    defaults = predictors.denoise_defaults(ctx.repo)
    limits = {str(k): int(v) for k, v in (cfg.get("up_to") or {}).items()}
    rows: list[Row] = []
    if "onnxruntime" in cfg.paths:
        try:
            _prepare_onnx(ctx)
        except ImportError as err:
            rows.append(Row("tiled", "onnxruntime", note=f"skipped: {err}"))
    skipped = {r.case for r in rows}
    emulated = [n for n in cfg.paths if predictors.emulated_bf16(n, "cpu")]
    plan = [
        (size, [n for n in cfg.paths if n not in emulated and n not in skipped and size <= limits.get(n, size)])
        for size in sorted(int(s) for s in cfg.sizes)
    ]
    if emulated:  # bf16 without hardware support: one small image only
        plan.insert(0, (int(cfg.emulated_bf16_size), emulated))
    for size, names in plan:
        if not names:
            continue
        image = test_image(ctx, size)
        for name in names:
            result = run_denoise(ctx, image, name, predictors.denoise_overrides(name), float(cfg.timeout_s))
            if result.returncode != 0:
                rows.append(
                    Row(
                        "tiled",
                        name,
                        f"{size}²",
                        note=f"failed (exit {result.returncode}): {result.stderr.strip()[-300:]}",
                    )
                )
                continue
            match = SUMMARY.search(result.stderr + result.stdout)
            loop_s = float(match.group(2)) if match else None
            rate = size * size / 1e6 / result.seconds
            path = predictors.inference_path(name, "cpu")
            plan = plan_for(size, size, path, float(defaults.memory_gb), int(defaults.overlap))
            notes = [path.describe(), plan.describe(size, size), f"process {result.seconds:.1f} s"]
            if loop_s is not None:
                notes.append(f"denoising loop {loop_s:.1f} s")
            if name in emulated:
                notes.append("bf16 emulated: this size only")
            ctx.results[("tiled", name, size)] = {
                "mpix_per_s": rate,
                "peak_mb": result.peak_mb,
                "seconds": result.seconds,
            }
            rows.append(Row("tiled", name, f"{size}²", rate, "Mpix/s", None, result.peak_mb, "; ".join(notes)))
    return rows


def run_startup(ctx: Context, cfg: Any) -> list[Row]:
    """Import times and process start → first tile of ``scripts/denoise.py`` (default path, one tile),
    with a warm bytecode cache (a warm-up run first) and, where the environment disables bytecode
    caching, without one too."""
    rows = []
    probe = (
        "import sys, time; t = time.perf_counter(); import lightning_modules.inference.denoise; "
        "print(time.perf_counter() - t, 'lightning' in sys.modules, 'segmentation_models_pytorch' in sys.modules)"
    )
    run_process([sys.executable, "-c", probe], cwd=ctx.repo, env=child_env(ctx))  # warms the bytecode cache
    result = run_process([sys.executable, "-c", probe], cwd=ctx.repo, env=child_env(ctx))
    if result.returncode == 0:
        seconds, lightning, smp = result.stdout.split()[-3:]
        ctx.results["denoise_imports_lightning"] = lightning == "True"
        rows.append(
            Row(
                "startup",
                "import lightning_modules.inference.denoise",
                "",
                float(seconds),
                "s",
                None,
                result.peak_mb,
                f"imports Lightning: {'yes' if lightning == 'True' else 'no'}; segmentation_models_pytorch: "
                f"{'yes' if smp == 'True' else 'no'}",
            )
        )
    image = test_image(ctx, int(cfg.first_tile_size))
    no_cache_here = bool(os.environ.get("PYTHONDONTWRITEBYTECODE")) or sys.dont_write_bytecode
    for cached in (True, False) if no_cache_here else (True,):
        runs = [run_denoise(ctx, image, "startup", [], 300, cached) for _ in range(int(cfg.repeats) + cached)]
        runs = [r for r in runs[int(cached) :] if r.returncode == 0]  # the first cached run only warms the cache
        if not runs:
            continue
        best = min(runs, key=lambda r: r.seconds)
        if cached:
            ctx.results["first_tile_s"] = best.seconds
        rows.append(
            Row(
                "startup",
                "denoise.py start → first tile" + ("" if cached else ", no bytecode cache"),
                f"{cfg.first_tile_size}²",
                best.seconds,
                "s",
                None,
                best.peak_mb,
                f"whole process on a one-tile image (an upper bound), default path, best of {len(runs)}"
                + (
                    "; bytecode cached as in a normal install"
                    if cached
                    else "; PYTHONDONTWRITEBYTECODE is set here, so every start compiles torch's sources"
                ),
            )
        )
    for module in cfg.imports:
        for _ in range(2):  # the first run may compile and cache the bytecode
            result = run_process([sys.executable, "-c", f"import {module}"], cwd=ctx.repo, env=child_env(ctx))
        rows.append(
            Row(
                "startup",
                f"python -c 'import {module}'",
                "",
                result.seconds,
                "s",
                None,
                result.peak_mb,
                "process wall time, bytecode cached",
            )
        )
    return rows
