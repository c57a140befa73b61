"""``denoise.py`` end to end on a folder of large images (process start included) against ONNX Runtime
fp32 running the bare exported network, in the same run; and the levers behind the difference.

Rows: the ``denoise.py`` process on ``images`` 16-bit PNGs of ``size``² (default settings, interpreter
start, model loading, reading, tiling, writing: everything); ONNX Runtime's forward alone on one
``onnx_size``² image (median of timed calls after a warm-up, timed before and after the process so
both see the same machine); their ratio with the CPU's flags. ``levers: true`` adds in-process timings
of the settings that make the difference, interleaved round-robin so that load drifts hit all alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from datamodules.io.images import ImageInfo, write_image
from lightning_modules.benchmark import predictors
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.machine import cpu_flags
from lightning_modules.benchmark.measure import time_calls
from lightning_modules.benchmark.report import Row
from lightning_modules.benchmark.tiled import SUMMARY, run_denoise
from lightning_modules.inference.backends import InferencePath, bf16_native, choose_path
from lightning_modules.inference.tile_plan import margin_for, plan_for
from lightning_modules.inference.tiling import sliding_window
from lightning_modules.nets.checkpoints import read_checkpoint
from lightning_modules.nets.fast_unet import FP32_DECODER_BLOCKS, FastUnet
from lightning_modules.nets.fast_unet import STRIPE_DECODER_BLOCKS as STRIPES


def image_folder(ctx: Context, size: int, count: int) -> Path:
    """``count`` 16-bit PNG chest phantoms of ``size``² in one folder, written once and reused."""
    from datamodules.phantom import chest_phantom

    folder = ctx.image_dir / f"folder_{count}x{size}"
    for index in range(count):
        path = folder / f"phantom_{index}.png"
        if not path.is_file():
            write_image(path, chest_phantom(size, seed=index).numpy(), ImageInfo(16, ".png"))
    return folder


def onnx_rate(ctx: Context, size: int, repeats: int) -> tuple[list[float], str]:
    """Seconds per call of ONNX Runtime fp32 on a 1×1×size² phantom (after one warm-up call)."""
    from datamodules.phantom import chest_phantom

    predictor, path = predictors.build("onnxruntime", ctx.checkpoint, "cpu", 1, ctx.cache_dir)
    x = chest_phantom(size, seed=0)[None, None]
    timing = time_calls(lambda: predictors.run(predictor, path, x), repeats)
    return timing.seconds, path.describe()


def cpu_note() -> str:
    flags = ", ".join(cpu_flags()) or "none of AVX2/AVX-512/AMX"
    return f"CPU flags: {flags}; native bf16: {'yes' if bf16_native('cpu') else 'no'}"


def run_endtoend(ctx: Context, cfg: Any) -> list[Row]:
    """``cfg``: ``size``, ``images``, ``onnx_size``, ``onnx_repeats``, ``timeout_s``, ``levers``,
    ``lever_size``, ``lever_repeats``."""
    size, count = int(cfg.size), int(cfg.images)
    folder = image_folder(ctx, size, count)
    imports = _import_row(ctx)  # also caches the bytecode, as an installed package has it
    half = max(1, int(cfg.onnx_repeats) // 2)
    before, onnx_path = onnx_rate(ctx, int(cfg.onnx_size), half)
    result = run_denoise(ctx, folder, "endtoend", [], float(cfg.timeout_s))
    after, _ = onnx_rate(ctx, int(cfg.onnx_size), half)
    onnx_mpix = int(cfg.onnx_size) ** 2 / 1e6 / statistics.median(before + after)
    rows = [
        Row(
            "endtoend",
            "ONNX Runtime fp32, bare network",
            f"1×{cfg.onnx_size}²",
            onnx_mpix,
            "Mpix/s",
            note=f"{onnx_path}; forward only, median of {len(before + after)} calls after a warm-up, "
            "half before and half after the denoise.py process",
        )
    ]
    if result.returncode != 0:
        rows.append(Row("endtoend", "denoise.py", note=f"failed (exit {result.returncode}): {result.stderr[-300:]}"))
        return [*rows, imports]
    mpix = count * size * size / 1e6
    rate = mpix / result.seconds
    match = SUMMARY.search(result.stderr + result.stdout)
    loop = float(match.group(2)) if match else None
    path = choose_path("auto", "auto", "cpu")
    defaults = predictors.denoise_defaults(ctx.repo)
    plan = plan_for(size, size, path, float(defaults.memory_gb), int(defaults.overlap))
    note = [f"{path.describe()}; {plan.describe(size, size)}; process {result.seconds:.1f} s"]
    if loop is not None:
        note.append(f"images loop {loop:.1f} s (read, denoise, write), start + model {result.seconds - loop:.1f} s")
    rows.append(
        Row(
            "endtoend",
            "denoise.py default, start included",
            f"{count}×{size}²",
            rate,
            "Mpix/s",
            None,
            result.peak_mb,
            "; ".join(note),
        )
    )
    ratio = rate / onnx_mpix
    ctx.results[("endtoend", "ratio")] = ratio
    ctx.results[("endtoend", "images")] = f"{count}×{size}²"
    rows.append(
        Row("endtoend", "denoise.py end to end / ONNX Runtime bare", "", ratio, "×", note=cpu_note() + "; same run")
    )
    if cfg.get("levers"):
        rows += run_levers(ctx, int(cfg.lever_size), int(cfg.lever_repeats))
    return [*rows, imports]


@dataclass(frozen=True)
class Lever:
    """One setting of the levers table: FastUnet's arguments, autocast or not, and the tiling."""

    label: str
    fused: bool
    bf16: bool  # bf16 at all (fused: bf16 weights; else autocast)
    fp32_blocks: int
    tiles: dict[str, Any]  # sliding_window settings, or {"plan": True, ...} for denoise.py's plan
    stripe_blocks: int = 0


def levers(defaults: Any) -> list[Lever]:
    """The old defaults, then one lever changed at a time, ending at today's default."""
    old = {"tile": 512, "overlap": 128, "margin": 0, "align": 1, "batch_size": 4}
    overlap = int(defaults.overlap)
    new = {"plan": True, "overlap": overlap, "margin": margin_for(defaults.get("margin", "auto"), overlap), "align": 32}
    fp32 = [
        Lever("fp32 fused, 512/128 tiles ×4 (old default without bf16)", True, False, 0, old),
        Lever("fp32 fused, planned tiles (default without bf16)", True, False, FP32_DECODER_BLOCKS, new, STRIPES),
    ]
    if not bf16_native("cpu"):
        return fp32
    return [
        Lever("bf16 autocast, 512/128 tiles ×4 (old default)", False, True, 0, old),
        Lever("bf16 fused, 512/128 tiles ×4", True, True, 0, old),
        Lever("bf16 fused, planned tiles, all bf16", True, True, 0, new),
        Lever("bf16 fused + 2 fp32 decoder blocks, planned tiles (previous default)", True, True, 2, new, STRIPES),
        Lever(
            "bf16 fused + fp32 last decoder block, planned tiles (default)",
            True,
            True,
            FP32_DECODER_BLOCKS,
            new,
            STRIPES,
        ),
        *fp32,
    ]


def run_levers(ctx: Context, size: int, repeats: int) -> list[Row]:
    """Each lever alone, in this process, on one ``size``² phantom: Mpix/s of image and the speed-up
    over the first lever, timed round-robin (``repeats`` rounds, median)."""
    from datamodules.phantom import chest_phantom

    defaults = predictors.denoise_defaults(ctx.repo)
    hparams, state = read_checkpoint(ctx.checkpoint)
    image = chest_phantom(size, seed=0)
    jobs = []
    for lever in levers(defaults):
        dtype = torch.bfloat16 if lever.bf16 and lever.fused else torch.float32
        net = FastUnet(
            hparams,
            state,
            fused=lever.fused,
            dtype=dtype,
            fp32_blocks=lever.fp32_blocks,
            stripe_blocks=lever.stripe_blocks,
        ).eval()
        settings = dict(lever.tiles)
        if settings.pop("plan", False):
            path = InferencePath("fast", bf16=lever.bf16, channels_last=True, fused=lever.fused)
            plan = plan_for(size, size, path, float(defaults.memory_gb), settings["overlap"])
            settings.update(tile=plan.tile, batch_size=plan.batch_size)
        run = lambda net=net, bf16=lever.bf16, s=settings: sliding_window(
            image, net, bf16=bf16, channels_last=True, **s
        )
        run()  # warm-up: oneDNN builds its kernels for these shapes
        jobs.append((lever.label, settings, run))
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in jobs}
    for _ in range(repeats):
        for label, _, run in jobs:
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
    rows, first = [], None
    for label, settings, _ in jobs:
        rate = size * size / 1e6 / statistics.median(seconds[label])
        first = first or rate
        rows.append(
            Row(
                "endtoend",
                f"lever: {label}",
                f"{size}²",
                rate,
                "Mpix/s",
                note=f"{rate / first:.2f}× the first lever; tile {settings['tile']}, overlap {settings['overlap']}, "
                f"{settings['batch_size']} per pass; in-process, median of {repeats} interleaved rounds",
            )
        )
    return rows


def _import_row(ctx: Context) -> Row:
    """Seconds to import denoise.py's module in a fresh interpreter (bytecode cached): the start-up floor."""
    import sys

    from lightning_modules.benchmark.measure import run_process
    from lightning_modules.benchmark.tiled import child_env

    probe = "import time; t = time.perf_counter(); import lightning_modules.inference.denoise; print(time.perf_counter() - t)"
    run_process([sys.executable, "-c", probe], cwd=ctx.repo, env=child_env(ctx))  # warms the bytecode cache
    result = run_process([sys.executable, "-c", probe], cwd=ctx.repo, env=child_env(ctx))
    value = float(result.stdout.split()[-1]) if result.returncode == 0 and result.stdout.split() else None
    return Row(
        "endtoend",
        "lever: import of denoise.py's module",
        "",
        value,
        "s",
        None,
        result.peak_mb,
        f"whole process {result.seconds:.1f} s; paid once per denoise.py run, whatever the number of images",
    )
