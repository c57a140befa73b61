"""``denoise(cfg)``: the ``scripts/denoise.py`` logic. Imports no Lightning, so it starts fast."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.io.atomic import ensure_writable_dir
from datamodules.io.images import check_bit_depth, read_image, write_image
from datamodules.io.pixels import ImageInfo, ImageReadError
from lightning_modules.inference.backends import choose_path, load_predictor, pick_device
from lightning_modules.inference.ensemble import with_tta
from lightning_modules.inference.failed_list import FAILED_LIST, write_failures
from lightning_modules.inference.input_range import InputCheck, read_input_range
from lightning_modules.inference.outputs import (  # noqa: F401 - find_inputs, plan_outputs: the public names
    MODEL_RECORD,
    check_output_file,
    claim_outputs,
    find_inputs,
    is_done,
    looks_like_a_file,
    model_record,
    plan_outputs,
    report_failures,
    write_or_disk_full,
)
from lightning_modules.inference.tile_plan import auto_or_int, plan_for, tile_margin_for
from lightning_modules.inference.tiling import check_settings, sliding_window
from lightning_modules.runs.folders import resolve_checkpoint


def denoise(cfg: DictConfig) -> dict[str, Any]:
    """Denoise every input image into ``cfg.output``; return counts and throughput.

    An unreadable input is skipped and listed in ``failed.txt`` beside the outputs (the summary counts
    it, ``scripts/denoise.py`` exits 1); a rerun retries exactly the inputs without an output.
    """
    bit_depth = check_bit_depth(cfg.get("bit_depth"), "bit_depth")  # 12: 12-bit data in 16-bit files
    device = pick_device(str(cfg.device))
    tile, batch_size = auto_or_int(cfg.tile, "tile"), auto_or_int(cfg.batch_size, "batch_size")
    overlap = int(cfg.overlap)
    margin = tile_margin_for(cfg.get("tile_margin", "auto"), overlap)
    check_settings(overlap, margin, batch_size or 1)
    path = choose_path(str(cfg.get("backend", "auto")), str(cfg.precision), device, bool(cfg.channels_last))
    output = Path(cfg.output).expanduser()
    inputs, root = find_inputs(str(cfg.input), bool(cfg.get("recursive", False)), output)
    if looks_like_a_file(output):  # output=denoised.png: the file of a single input
        check_output_file(output, inputs, str(cfg.input), bool(cfg.jpeg_as_png))
        if output.resolve() == inputs[0].resolve():
            raise ValueError(f"output={output}: is the input image; denoising never writes over its inputs")
        output_dir, jobs = output.parent, [(inputs[0], output)]
        record_file = output.parent / f".{output.name}{MODEL_RECORD}"
    else:
        output_dir = output
        jobs = plan_outputs(inputs, output_dir, bool(cfg.jpeg_as_png), root)  # refused before anything is written
        record_file = output_dir / MODEL_RECORD
    checkpoint, model_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    ensure_writable_dir(output_dir, "output")
    tta = cfg.get("tta")
    views = 4 if tta is True else 1 if tta in (None, False, 0, 1) else int(tta)  # as with_tta reads it
    settings = {"tta": views, "overlap": overlap, "tile_margin": margin, "precision": "bf16" if path.bf16 else "32"}
    since = claim_outputs(record_file, model_record(checkpoint, settings), bool(cfg.overwrite), output)
    net, path = load_predictor(checkpoint, device, path, batch_size=batch_size or 1)
    net = with_tta(net, cfg.get("tta"))

    todo = [(s, d) for s, d in jobs if cfg.overwrite or not is_done(d, since)]
    skipped = len(jobs) - len(todo)
    console = Console(stderr=True)
    check_input = InputCheck(
        read_input_range(model_dir), lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
    )
    start, pixels, done = time.perf_counter(), 0, 0
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
                image, info = read_image(source, bit_depth)
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
                batch_size=plan.batch_size,
                device=device,
                bf16=path.bf16,
                channels_last=path.channels_last,
                on_tile=lambda n, task=tiles_task: progress.advance(task, n),
            )
            if target.suffix.lower() != source.suffix.lower():
                info = ImageInfo(bit_depth=8, suffix=target.suffix.lower())
            write = partial(write_image, target, result.clamp_(0.0, 1.0).numpy(), info)
            whole = f"{done} of {len(todo)} images written, each whole; free some space and run the same command again"
            write_or_disk_full(target, write, whole)
            done += 1
            del write
            del result
            pixels += height * width
            progress.remove_task(tiles_task)
            progress.advance(files_task)
    seconds = time.perf_counter() - start
    check_input.finish()
    write_or_disk_full(output_dir / FAILED_LIST, lambda: write_failures(output_dir, failed))
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
        f"{seconds:.1f} s, {summary['mpix_per_s']:.2f} Mpix/s -> {output}"
    )
    report_failures(failed, output_dir / FAILED_LIST)
    return summary
