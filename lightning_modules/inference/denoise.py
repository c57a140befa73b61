"""``denoise(cfg)``: the ``scripts/denoise.py`` logic. Imports no Lightning, so it starts fast."""

from __future__ import annotations

import glob
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.io.atomic import ensure_writable_dir
from datamodules.io.images import ImageInfo, ImageReadError, is_image_file, read_image, write_image
from datamodules.io.pairing import list_images
from lightning_modules.inference.allocator import release_if_above
from lightning_modules.inference.backends import choose_path, load_predictor, pick_device
from lightning_modules.inference.ensemble import with_tta
from lightning_modules.inference.failures import write_failures
from lightning_modules.inference.input_range import InputCheck, read_input_range
from lightning_modules.inference.tile_plan import auto_or_int, margin_for, plan_for, release_limit_mb
from lightning_modules.inference.tiling import check_settings, sliding_window
from lightning_modules.runs.folders import resolve_checkpoint
from lightning_modules.runs.schema import DENOISE_KEYS, check_types


def find_inputs(spec: str) -> list[Path]:
    """Images named by a file, a folder (its images, not recursive) or a glob pattern."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = list_images(path)
    else:
        files = sorted(Path(p) for p in glob.glob(str(path)) if is_image_file(p))
    if not files:
        raise FileNotFoundError(f"input={spec}: no PNG, JPEG, TIFF or DICOM images found")
    return files


def output_path(source: Path, output_dir: Path, jpeg_as_png: bool) -> Path:
    """Same file name in ``output_dir``; lossy JPEG becomes PNG unless ``jpeg_as_png`` is false."""
    if jpeg_as_png and source.suffix.lower() in (".jpg", ".jpeg"):
        return output_dir / (source.stem + ".png")
    return output_dir / source.name


def plan_outputs(inputs: list[Path], output_dir: Path, jpeg_as_png: bool) -> list[tuple[Path, Path]]:
    """``(input, output)`` for every input; never an output that is an input, never two inputs on one output.

    Inputs whose outputs would collide (``scan.jpg`` and ``scan.png`` both giving ``scan.png``) keep
    their extension in the name instead: ``scan_jpg.png`` and ``scan_png.png``. An output folder
    that holds any input file is refused (raising ``ValueError``): denoising must never write over
    the originals, whatever ``overwrite`` says.
    """
    resolved_inputs = {p.resolve() for p in inputs}
    out_resolved = output_dir.resolve()
    clashing = [p for p in inputs if p.resolve().parent == out_resolved]
    if clashing:
        raise ValueError(
            f"output={output_dir}: this folder holds the input images (e.g. {clashing[0].name}); "
            "denoising never writes over its inputs, choose another output folder"
        )
    first = {p: output_path(p, output_dir, jpeg_as_png) for p in inputs}
    counts = Counter(first.values())
    jobs = []
    for source, target in first.items():
        if counts[target] > 1:
            extension = source.suffix.lstrip(".").lower() or "noext"
            target = target.with_name(f"{source.stem}_{extension}{target.suffix}")
        if target.resolve() in resolved_inputs:
            raise ValueError(f"output={output_dir}: {target} is an input image; choose another output folder")
        jobs.append((source, target))
    shared = [target for target, count in Counter(t for _, t in jobs).items() if count > 1]
    if shared:
        duplicates = sorted(t.name for t in shared)
        raise ValueError(f"output={output_dir}: several inputs would be written to {', '.join(duplicates)}")
    return jobs


def denoise(cfg: DictConfig) -> dict[str, Any]:
    """Denoise every input image into ``cfg.output``; return counts and throughput.

    An unreadable input is skipped and listed in ``failed.txt`` beside the outputs (the summary counts
    it, ``scripts/denoise.py`` exits 1); a rerun retries exactly the inputs without an output.
    """
    check_types(cfg, DENOISE_KEYS)
    device = pick_device(str(cfg.device))
    tile, batch_size = auto_or_int(cfg.tile, "tile"), auto_or_int(cfg.batch_size, "batch_size")
    overlap = int(cfg.overlap)
    margin = margin_for(cfg.get("margin", "auto"), overlap)
    check_settings(overlap, margin, batch_size or 1)
    path = choose_path(str(cfg.get("backend", "auto")), str(cfg.precision), device, bool(cfg.channels_last))
    inputs = find_inputs(str(cfg.input))
    output_dir = Path(cfg.output).expanduser()
    jobs = plan_outputs(inputs, output_dir, bool(cfg.jpeg_as_png))  # refused before anything is written
    checkpoint, model_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    ensure_writable_dir(output_dir, "output")
    net, path = load_predictor(checkpoint, device, path, batch_size=batch_size or 1)
    net = with_tta(net, cfg.get("tta"))

    todo = [(s, d) for s, d in jobs if cfg.overwrite or not d.exists()]
    memory_limit_mb = release_limit_mb(float(cfg.memory_gb))
    skipped = len(jobs) - len(todo)
    console = Console(stderr=True)
    check_input = InputCheck(
        read_input_range(model_dir), lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
    )
    start, pixels = time.perf_counter(), 0
    failed: list[tuple[Path, str]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not cfg.progress,
    ) as progress:
        files_task = progress.add_task("images", total=len(todo))
        for source, target in todo:
            try:
                image, info = read_image(source)
            except (ImageReadError, OSError) as err:  # one bad file must not stop the batch
                failed.append((source, str(err)))
                progress.advance(files_task)
                continue
            check_input(str(source), image)  # still denoised: the user decides, knowing what differs
            height, width = image.shape
            plan = plan_for(height, width, path, float(cfg.memory_gb), overlap, tile, batch_size)
            tiles_task = progress.add_task(f"  {source.name}", total=plan.tiles)
            result = sliding_window(
                torch.from_numpy(image),
                net,
                tile=plan.tile,
                overlap=overlap,
                margin=margin,
                memory_mb=memory_limit_mb,
                batch_size=plan.batch_size,
                device=device,
                bf16=path.bf16,
                channels_last=path.channels_last,
                on_tile=lambda n, task=tiles_task: progress.advance(task, n),
            )
            if target.suffix.lower() != source.suffix.lower():
                info = ImageInfo(bit_depth=8, suffix=target.suffix.lower())
            write_image(target, result.clamp_(0.0, 1.0).numpy(), info)
            del result
            release_if_above(memory_limit_mb)  # between images: what a whole-image pass kept for reuse
            pixels += height * width
            progress.remove_task(tiles_task)
            progress.advance(files_task)
    seconds = time.perf_counter() - start
    check_input.finish()
    write_failures(output_dir, failed)
    summary = {
        "images": len(todo) - len(failed),
        "failed": len(failed),
        "skipped": skipped,
        "mpix": pixels / 1e6,
        "seconds": seconds,
        "mpix_per_s": pixels / 1e6 / seconds if seconds > 0 else 0.0,
    }
    console.print(
        f"{summary['images']} images ({skipped} already done, {len(failed)} failed), {summary['mpix']:.2f} Mpix, "
        f"{seconds:.1f} s, {summary['mpix_per_s']:.2f} Mpix/s -> {output_dir}"
    )
    return summary
