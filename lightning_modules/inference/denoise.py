"""``denoise(cfg)``: the ``scripts/denoise.py`` logic. Imports no Lightning, so it starts fast."""

from __future__ import annotations

import glob
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.io.atomic import ensure_writable_dir
from datamodules.io.images import ImageInfo, is_image_file, read_image, write_image
from datamodules.io.pairing import list_images
from lightning_modules.inference.backends import choose_path, load_predictor, pick_device
from lightning_modules.inference.ensemble import with_tta
from lightning_modules.inference.tiling import count_tiles, sliding_window
from lightning_modules.runs.folders import resolve_checkpoint


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


def denoise(cfg: DictConfig) -> dict[str, Any]:
    """Denoise every input image into ``cfg.output``; return counts and throughput."""
    device = pick_device(str(cfg.device))
    path = choose_path(str(cfg.get("backend", "auto")), str(cfg.precision), device, bool(cfg.channels_last))
    inputs = find_inputs(str(cfg.input))
    checkpoint = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)[0]
    output_dir = ensure_writable_dir(Path(cfg.output).expanduser(), "output")
    net, path = load_predictor(checkpoint, device, path, batch_size=cfg.batch_size)
    net = with_tta(net, cfg.get("tta"))

    jobs = [(src, output_path(src, output_dir, cfg.jpeg_as_png)) for src in inputs]
    todo = [(s, d) for s, d in jobs if cfg.overwrite or not d.exists()]
    skipped = len(jobs) - len(todo)
    console = Console(stderr=True)
    start, pixels = time.perf_counter(), 0
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
            image, info = read_image(source)
            height, width = image.shape
            tiles_task = progress.add_task(f"  {source.name}", total=count_tiles(height, width, cfg.tile, cfg.overlap))
            result = sliding_window(
                torch.from_numpy(image),
                net,
                tile=cfg.tile,
                overlap=cfg.overlap,
                batch_size=cfg.batch_size,
                device=device,
                bf16=path.bf16,
                channels_last=path.channels_last,
                on_tile=lambda n, task=tiles_task: progress.advance(task, n),
            )
            if target.suffix.lower() != source.suffix.lower():
                info = ImageInfo(bit_depth=8, suffix=target.suffix.lower())
            write_image(target, result.clamp_(0.0, 1.0).numpy(), info)
            pixels += height * width
            progress.remove_task(tiles_task)
            progress.advance(files_task)
    seconds = time.perf_counter() - start
    summary = {
        "images": len(todo),
        "skipped": skipped,
        "mpix": pixels / 1e6,
        "seconds": seconds,
        "mpix_per_s": pixels / 1e6 / seconds if seconds > 0 else 0.0,
    }
    console.print(
        f"{summary['images']} images ({skipped} already done), {summary['mpix']:.2f} Mpix, "
        f"{seconds:.1f} s, {summary['mpix_per_s']:.2f} Mpix/s -> {output_dir}"
    )
    return summary
