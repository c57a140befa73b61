"""``run_benchmark(cfg)``: every selected section in order, then one table, ``benchmark.md`` and ``benchmark.json``."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from datamodules.io.atomic import ensure_writable_dir
from lightning_modules.benchmark.ceilings import conv3x3_gflops, matmul_gflops, model_gflop_per_mpix
from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.machine import machine_info
from lightning_modules.benchmark.report import Row, rich_table, write_report
from lightning_modules.benchmark.targets import check_targets
from lightning_modules.inference.allocator import reuse_freed_memory
from lightning_modules.inference.backends import bf16_native, choose_path

SECTIONS = (
    "ceilings",
    "inference",
    "startup",
    "tiled",
    "endtoend",
    "seams",
    "quality",
    "training",
    "loader",
    "baselines",
    "gpu",
)
REPO = Path(__file__).resolve().parents[2]


def settings(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``quick_settings`` (``quick=true``) or ``full_settings`` (``full=true``) merged
    over it; sections checked."""
    if cfg.get("quick") and cfg.get("full"):
        raise ValueError("quick=true and full=true: choose one")
    if cfg.get("quick"):
        cfg = OmegaConf.merge(cfg, cfg.quick_settings)
    if cfg.get("full"):
        cfg = OmegaConf.merge(cfg, cfg.full_settings)
    unknown = [s for s in cfg.sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    return cfg


def prepare_model(model: str, run_dir: Path) -> tuple[Path, str]:
    """The checkpoint to benchmark: ``auto`` = the shipped model if present, else untrained weights."""
    from lightning_modules.runs.folders import PRETRAINED_DIR, PRETRAINED_WEIGHTS

    if model != "auto":
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model={model}: file not found (use auto or a checkpoint path)")
        return path, f"checkpoint {path}"
    shipped = PRETRAINED_DIR / PRETRAINED_WEIGHTS
    if shipped.is_file():
        return shipped, f"the shipped model ({shipped.relative_to(REPO) if shipped.is_relative_to(REPO) else shipped})"
    from lightning_modules.nets.checkpoints import save_weights
    from lightning_modules.nets.unet import DenoisingUnet

    torch.manual_seed(0)
    path = save_weights(
        run_dir / "untrained.pth", DenoisingUnet(residual=True), {"encoder_name": "resnet18", "residual": True}
    )
    return path, "an untrained DenoisingUnet (no shipped model found): speeds are representative, PSNR values are not"


def _ceilings(ctx: Context, cfg: Any, device: str) -> list[Row]:
    rows = []
    native = bf16_native(device)
    low = ["bf16", "fp16"] if device == "cuda" else ["bf16"]
    for precision in ["fp32", *low]:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        emulated = precision != "fp32" and not native
        n = int(cfg.emulated_matmul_n if emulated else cfg.matmul_n)
        size = int(cfg.emulated_conv_size if emulated else cfg.conv_size)
        gemm = matmul_gflops(dtype, device, n, int(cfg.repeats))
        conv = conv3x3_gflops(dtype, device, int(cfg.conv_channels), size, int(cfg.conv_batch), int(cfg.repeats))
        ctx.ceilings[f"{device} matmul {precision}"], ctx.ceilings[f"{device} conv {precision}"] = gemm, conv
        note = "emulated (no native bf16)" if emulated else ""
        rows.append(Row("ceilings", f"{device} matmul {precision}", f"{n}²", gemm, "GFLOP/s", None, None, note))
        rows.append(
            Row(
                "ceilings",
                f"{device} conv 3×3 {precision}",
                f"{cfg.conv_batch}×{cfg.conv_channels}×{size}²",
                conv,
                "GFLOP/s",
                None,
                None,
                ("channels_last; " + note).strip("; "),
            )
        )
    return rows


def _model_rows(ctx: Context, size: int) -> list[Row]:
    from lightning_modules.nets.checkpoints import load_network

    net, _ = load_network(ctx.checkpoint)
    ctx.gflop_per_mpix = model_gflop_per_mpix(net.train(), size)
    return [
        Row(
            "ceilings",
            "model forward",
            "",
            ctx.gflop_per_mpix["forward"],
            "GFLOP/Mpix",
            None,
            None,
            "FlopCounterMode; the % of ceiling columns divide by the conv 3×3 rate of the same precision",
        ),
        Row(
            "ceilings",
            "model forward + backward",
            "",
            ctx.gflop_per_mpix["forward_backward"],
            "GFLOP/Mpix",
            None,
            None,
            "L1 loss; training rows use this",
        ),
    ]


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Run the sections of ``cfg.sections``, print the table, write ``benchmark.md``/``.json``."""
    from lightning_modules.benchmark.classical import run_classical
    from lightning_modules.benchmark.endtoend import run_endtoend
    from lightning_modules.benchmark.inference import run_inference
    from lightning_modules.benchmark.quality import run_quality
    from lightning_modules.benchmark.seams import run_seams
    from lightning_modules.benchmark.tiled import run_startup, run_tiled
    from lightning_modules.benchmark.training import run_loader, run_training

    cfg = settings(cfg)
    reuse_freed_memory()  # as denoise.py does on the CPU, so every in-process row runs alike
    console = Console() if Console().is_terminal else Console(width=200)  # logs keep the table readable
    run_dir = ensure_writable_dir(cfg.paths.output_dir, "paths.output_dir")
    machine = machine_info()
    checkpoint, model_note = prepare_model(str(cfg.model), run_dir)
    ctx = Context(checkpoint, model_note, run_dir, REPO, Path(cfg.image_dir).expanduser())
    ensure_writable_dir(ctx.image_dir, "image_dir")
    ctx.notes.append(f"Model: {model_note}.")
    ctx.notes.append(
        "This process keeps freed memory for reuse (lightning_modules/inference/allocator.py), as denoise.py does on the "
        "CPU: without it every forward pass page-faults its activations in again. The training rows include it too."
    )
    ctx.notes.append(
        f"The default path here: {choose_path('auto', 'auto', 'cpu').describe()} (backend=auto precision=auto)."
    )
    rows = _model_rows(ctx, int(cfg.flop_size))
    data_cfg = cfg.data
    jobs = {
        "ceilings": lambda: _ceilings(ctx, cfg.ceilings, "cpu"),
        "inference": lambda: run_inference(ctx, cfg.inference),
        "tiled": lambda: run_tiled(ctx, cfg.tiled),
        "startup": lambda: run_startup(ctx, cfg.startup),
        "endtoend": lambda: run_endtoend(ctx, cfg.endtoend),
        "seams": lambda: run_seams(ctx, cfg.seams),
        "quality": lambda: run_quality(ctx, cfg.quality),
        "training": lambda: run_training(ctx, cfg.training, data_cfg),
        "loader": lambda: run_loader(ctx, cfg.loader, data_cfg),
        "baselines": lambda: run_classical(ctx, cfg.baselines, cfg.quality),
        "gpu": lambda: _gpu(ctx, cfg),
    }
    durations = {}
    for section in SECTIONS:  # in this order, whatever the order of cfg.sections
        if section not in cfg.sections:
            continue
        console.print(f"[bold]benchmark[/]: {section} ...")
        start = time.perf_counter()
        try:
            rows += jobs[section]()
        except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
            if cfg.fail_fast:
                raise
            rows.append(Row(section, "section failed", note=f"{type(err).__name__}: {err}"))
            console.print(traceback.format_exc())
        durations[section] = round(time.perf_counter() - start, 1)
        console.print(f"[bold]benchmark[/]: {section} took {durations[section]:.0f} s")
    targets = check_targets(ctx)
    ctx.notes.append("Section durations (s): " + ", ".join(f"{k} {v}" for k, v in durations.items()) + ".")
    title = f"xray-denoise benchmark: {machine['cpu']}, {machine['logical_cores']} cores, {machine['gpu']}"
    console.print(rich_table(rows, targets, title))
    md, js = write_report(
        run_dir,
        machine,
        rows,
        targets,
        ctx.notes,
        {"config": OmegaConf.to_container(cfg, resolve=True), "section_seconds": durations},
    )
    console.print(f"Written: {md} and {js}")
    return {"rows": rows, "targets": targets, "markdown": md, "json": js, "seconds": durations}


def _gpu(ctx: Context, cfg: DictConfig) -> list[Row]:
    from lightning_modules.benchmark.inference import run_inference

    if not torch.cuda.is_available():
        ctx.notes.append("GPU: no GPU on this machine, so the GPU table was not run.")
        return [Row("gpu", "no GPU", note="torch.cuda.is_available() is False")]
    rows = _ceilings(ctx, cfg.gpu.ceilings, "cuda")
    for row in rows:
        row.section = "gpu"
    return rows + run_inference(ctx, cfg.gpu, device="cuda", section="gpu")
