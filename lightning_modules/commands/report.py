"""``report(cfg)``: the ``scripts/report.py`` logic. A model report, or with ``sweep=`` a sweep summary.

A model report evaluates a checkpoint, the noisy input and classical baselines on the same images at
every dose and writes into ``out_dir``: ``metrics.csv`` (per image, dose and method),
``reference.csv`` (the noisy input on the finer reference dose grid), ``summary.json`` (means, std,
95 % CIs, dose-reduction factors, provenance), ``report.md`` / ``report.html`` and ``figures/*.png``.
Imports no Lightning.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from datamodules.datasets import PairedImageDataset
from datamodules.io.atomic import atomic_write_csv, atomic_write_text, ensure_writable_dir
from datamodules.io.images import stated_bit_depth
from datamodules.io.pairing import DatasetLayoutError, find_pairs
from datamodules.io.pixels import ImageReadError
from datamodules.noise import check_dose
from datamodules.splits import eval_seed
from lightning_modules.classical.baselines import LABELS, select_baselines
from lightning_modules.classical.stabilisers import fit_affine_degradation
from lightning_modules.inference.backends import pick_device
from lightning_modules.inference.ensemble import with_tta
from lightning_modules.inference.failed_list import FAILED_LIST, write_failures
from lightning_modules.nets.checkpoints import load_network
from lightning_modules.nets.metrics import METRIC_NAMES
from lightning_modules.report.document import checkpoint_info, software_versions, write_document
from lightning_modules.report.figures import Curve, PanelCase, plot_dose_curves, plot_flat_crops, plot_panels
from lightning_modules.report.image_quality_report import run_section, settings_from_config
from lightning_modules.report.inputs import (
    EvalImage,
    data_root,
    describe_run_data,
    noise_model,
    resolve_inputs,
    split_images,
    subset,
)
from lightning_modules.report.markdown import TITLES, render_report
from lightning_modules.report.stats import DoseEquivalent
from lightning_modules.report.study import PAIRED, Condition, DoseStudy, StudyResult
from lightning_modules.report.summary import build_summary, dose_key, reference_curve
from lightning_modules.runs.folders import RUN_CONFIG, load_run_config, resolve_checkpoint
from lightning_modules.selfsup.fusion import FUSION_KEY, with_fusion
from lightning_modules.selfsup.intensity import MAP_KEY, fit_intensity_map, is_self_supervised, with_intensity_map

ROW_COLUMNS = ["file", "dose", "method", *METRIC_NAMES]
REFERENCE_COLUMNS = ["file", "dose", *METRIC_NAMES]
AFFINE_FIT_PAIRS = 200  # pairs read to fit the intensity correction of real pairs


def report(cfg: DictConfig) -> dict[str, Any]:
    """``sweep=<multirun folder>``: the sweep summary; otherwise the report of ``ckpt`` (of ``run``)."""
    if cfg.get("sweep"):
        from lightning_modules.report.sweep import summarise_sweep

        return summarise_sweep(cfg.sweep, output_dir(cfg), html=bool(cfg.html), images=bool(cfg.sweep_images))
    # bit_depth=12: every image the report reads (12-bit data in 16-bit files)
    with stated_bit_depth(cfg.get("bit_depth")):
        return model_report(cfg)


def output_dir(cfg: DictConfig) -> Path:
    """``out_dir``, else this command's Hydra folder (``logs/report/runs/<time>``)."""
    return ensure_writable_dir(cfg.out_dir if cfg.get("out_dir") else cfg.paths.output_dir, "out_dir")


def reference_doses(doses: list[float], requested: Any) -> list[float]:
    """The study doses plus the requested reference doses, or by default powers of two from just
    below the lowest dose up to 8 (the physical model simulates any dose, above full dose too)."""
    if requested is None:
        low = math.floor(math.log2(min(doses)))
        extra = [2.0**k for k in range(low, 4)]
    else:
        extra = [check_dose(float(d), "reference_doses") for d in requested]
    return sorted(set(doses) | set(extra))


def check_report_config(cfg: DictConfig) -> None:
    if str(cfg.precision) not in ("32", "bf16"):
        raise ValueError(f"precision={cfg.precision!r} is unknown; use 32 or bf16")
    if cfg.split not in ("train", "val", "test"):
        raise ValueError(f"split={cfg.split!r} is unknown; use train, val or test")
    if cfg.max_images is not None and int(cfg.max_images) < 1:
        raise ValueError(f"max_images must be >= 1 (or null for all), got {cfg.max_images}")
    if not cfg.doses:
        raise ValueError("doses: give at least one dose, e.g. doses=[1.0,0.5,0.25,0.1,0.05]")
    for dose in cfg.doses:
        if not isinstance(dose, (int, float)):
            raise ValueError(f"doses: {dose!r} is not a number")
        check_dose(float(dose), "doses")


def model_report(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate, summarise and write the report of one checkpoint; returns the summary."""
    started, created = time.perf_counter(), datetime.now().astimezone().isoformat(timespec="seconds")
    check_report_config(cfg)
    quality = settings_from_config(cfg.get("image_quality"), [float(d) for d in cfg.doses])
    ckpt_path, run_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    if run_dir is None:
        raise FileNotFoundError(
            f"ckpt={cfg.ckpt}: not inside a training run folder, so its data config is unknown; pass run=<run folder>"
        )
    if not (run_dir / RUN_CONFIG).is_file():
        raise FileNotFoundError(f"ckpt={cfg.ckpt}: {run_dir} has no {RUN_CONFIG}, so its data config is unknown")
    run_data = load_run_config(run_dir).data
    root = data_root(run_data, cfg.get("data_root"))
    all_images = split_images(run_data, root, cfg.split)
    images = subset(all_images, cfg.max_images)
    inputs = resolve_inputs(str(cfg.inputs), run_data)
    baselines, notes = select_baselines([str(b) for b in cfg.baselines])
    out_dir = output_dir(cfg)

    net, hparams = load_network(ckpt_path)
    net = with_fusion(net, hparams.get(FUSION_KEY))  # N2V2: the output fused with the input, as trained
    device = pick_device(str(cfg.device))
    bf16 = str(cfg.precision) == "bf16"
    net, intensity = report_intensity_map(net, hparams, cfg, inputs, root, device, bf16)
    net = with_tta(net, cfg.get("tta"))
    common = {"device": device, "bf16": bf16, "channels_last": bool(hparams.get("channels_last"))}
    study, extra = build_study(cfg, inputs, run_data, root, images, net, baselines, common)

    result = _run(study, images, bool(cfg.progress))
    write_failures(out_dir, result.failed)
    if result.failed:
        if not result.rows:
            raise ImageReadError(f"none of the {len(images)} images could be read; see {out_dir / FAILED_LIST}")
        bad = {source for source, _ in result.failed}
        images = [image for image in images if str(image.clean) not in bad]
        notes.append(f"{len(result.failed)} image(s) could not be read and are left out: see {FAILED_LIST}.")
    summary = build_summary(study, result, inputs, baselines, notes)
    summary.update(
        {
            **extra,
            "intensity_map": intensity,
            "title": f"{run_dir.name} / {Path(ckpt_path).name}",
            "run": str(run_dir.resolve()),
            "checkpoint": checkpoint_info(ckpt_path),
            "run_data": describe_run_data(run_data),
            "data_root": str(root),
            "split": str(cfg.split),
            "split_images": len(all_images),
            "files": [image.name for image in images],
            "failed": [{"file": source, "reason": reason} for source, reason in result.failed],
            "precision": str(cfg.precision),
            "tta": cfg.get("tta") or False,
            "device": str(device),
            "versions": software_versions(),
            "created": created,
        }
    )
    figures = write_figures(study, images, result, summary, out_dir / "figures")
    sections: list[str] = []
    if quality is not None:  # simulated with the report's noise model (the physical one for a real-pairs run)
        noise = study.noise if study.noise is not None else noise_model(cfg.get("noise"), run_data)
        section, quality_figures, sections = run_section(
            quality, noise, baselines, study.predict, all_images, summary["metrics"], out_dir
        )
        summary["image_quality"] = section
        figures.update(quality_figures)
    summary["seconds"] = time.perf_counter() - started
    summary["figures"] = figures
    atomic_write_csv(out_dir / "metrics.csv", result.rows, ROW_COLUMNS)
    if result.reference:
        atomic_write_csv(out_dir / "reference.csv", result.reference, REFERENCE_COLUMNS)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    run_yaml = (run_dir / RUN_CONFIG).read_text(encoding="utf-8")
    report_yaml = OmegaConf.to_yaml(
        {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in ("hydra", "paths")}
    )
    markdown = render_report(summary, figures, run_yaml, report_yaml, sections)
    written = write_document(
        markdown, out_dir / "report.md", f"Evaluation report: {summary['title']}", html=bool(cfg.html)
    )
    _print_summary(summary, written)
    return summary


def report_intensity_map(
    net: Any, hparams: dict[str, Any], cfg: DictConfig, inputs: str, root: Path, device: Any, bf16: bool
) -> tuple[Any, dict[str, Any] | None]:
    """A self-supervised model's map to full-dose intensities: the checkpoint's, else (real pairs)
    one fitted on ``affine_fit_split`` like the baselines' correction; ``None`` for supervised models."""
    if hparams.get(MAP_KEY):
        return with_intensity_map(net, hparams[MAP_KEY]), dict(hparams[MAP_KEY])
    if not is_self_supervised(hparams) or inputs != "paired":
        return net, None
    pairs = PairedImageDataset(affine_fit_pairs(root, cfg)[:AFFINE_FIT_PAIRS])
    fitted = fit_intensity_map(net, pairs, str(cfg.affine_fit_split), device, bf16)
    return with_intensity_map(net, fitted), fitted


def affine_fit_pairs(root: Path, cfg: DictConfig) -> list[Any]:
    """The real pairs of ``affine_fit_split``, which the intensity corrections of real pairs are fitted on."""
    try:
        return find_pairs(root / str(cfg.affine_fit_split))
    except DatasetLayoutError as err:
        raise DatasetLayoutError(f"affine_fit_split={cfg.affine_fit_split}: {err}") from err


def build_study(
    cfg: DictConfig,
    inputs: str,
    run_data: DictConfig,
    root: Path,
    images: list[EvalImage],
    net: Any,
    baselines: list[str],
    common: dict[str, Any],
) -> tuple[DoseStudy, dict[str, Any]]:
    """The study of simulated doses or of real pairs, and what the report says about its inputs."""
    if inputs == "paired":
        if any(image.low is None for image in images):
            raise FileNotFoundError(f"inputs=paired: {root / cfg.split} has no high/ and low/ folders of real pairs")
        fit_pairs = affine_fit_pairs(root, cfg)
        correction = fit_affine_degradation([(p.low, p.high) for p in fit_pairs], AFFINE_FIT_PAIRS)
        fit = {
            "split": str(cfg.affine_fit_split),
            "pairs": min(len(fit_pairs), AFFINE_FIT_PAIRS),
            "gain": correction.gain,
            "offset": correction.offset,
            "noise": correction.noise,
        }
        return DoseStudy(net, baselines, paired_stabiliser=correction, **common), {"affine_fit": fit}
    noise = noise_model(cfg.get("noise"), run_data)
    seed = eval_seed(cfg.seed if cfg.get("seed") is not None else run_data.get("seed", 1234), str(cfg.split))
    doses = [float(d) for d in cfg.doses]
    study = DoseStudy(net, baselines, doses, noise, seed, reference_doses(doses, cfg.get("reference_doses")), **common)
    return study, {"noise": repr(noise), "seed": seed, "reference_doses": study.reference_doses}


def _run(study: DoseStudy, images: list[EvalImage], progress: bool) -> StudyResult:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task(f"images × {len(study.conditions)} doses × {len(study.methods)} methods", total=len(images))
        return study.run(images, on_image=lambda _: bar.advance(task))


def write_figures(
    study: DoseStudy, images: list[EvalImage], result: StudyResult, summary: dict[str, Any], folder: Path
) -> dict[str, str]:
    """Dose curves (simulated inputs) and example panels; returns paths relative to the report."""
    figures: dict[str, str] = {}
    if "reference" in summary:
        plot_dose_curves(*_curve_data(summary), folder / "curves.png", title=summary["title"])
        figures["curves"] = "figures/curves.png"
    by_name = {image.name: image for image in images}
    for condition in study.conditions:
        key = dose_key(condition)
        cases = panel_cases(study, by_name, result.rows, condition)
        suffix = "paired" if condition == PAIRED else f"dose_{key}"
        heading = "real pairs" if condition == PAIRED else f"dose {key}"
        title = f"{heading}: best, median and worst image by model PSNR"
        plot_panels(cases, study.methods, folder / f"panels_{suffix}.png", title=title)
        figures[f"panels {key}"] = f"figures/panels_{suffix}.png"
        median = next((case for case in cases if "median" in case.label.split(" = ")), cases[len(cases) // 2])
        title = f"{heading}: flattest body region, enlarged"
        plot_flat_crops(median, study.methods, folder / f"flat_{suffix}.png", title=title)
        figures[f"flat region {key}"] = f"figures/flat_{suffix}.png"
    return figures


def _curve_data(summary: dict[str, Any]):
    curves: dict[str, dict[str, Curve]] = {}
    doses = sorted(float(d) for d in summary["dose_keys"])
    for metric in ("psnr", "ssim"):
        curves[metric] = {}
        for method in summary["methods"]:
            stats = [summary["metrics"][f"{d:g}"][method][metric] for d in doses]
            curves[metric][method] = Curve(
                doses, [s["mean"] for s in stats], [s["ci95"][0] for s in stats], [s["ci95"][1] for s in stats]
            )
    reference = {m: reference_curve(summary["reference"], m) for m in ("psnr", "ssim")}
    rows = summary["dose_reduction"]["psnr"]
    return curves, reference, {r["dose"]: DoseEquivalent(r["equivalent_dose"], r["relation"], r["bound"]) for r in rows}


def panel_cases(
    study: DoseStudy, by_name: dict[str, EvalImage], rows: list[dict[str, Any]], condition: Condition
) -> list[PanelCase]:
    """Best, median and worst image by model PSNR at ``condition``, recomputed (same seeds, same output)."""
    model_rows = sorted((r for r in rows if r["dose"] == condition and r["method"] == "model"), key=lambda r: r["psnr"])
    picks: dict[str, list[str]] = {}
    for label, index in (("best", -1), ("median", len(model_rows) // 2), ("worst", 0)):
        picks.setdefault(model_rows[index]["file"], []).append(label)
    cases = []
    for name, labels in picks.items():
        clean, outputs = study.evaluate_image(by_name[name], [condition])
        metrics = {r["method"]: r for r in rows if r["dose"] == condition and r["file"] == name}
        cases.append(PanelCase(" = ".join(labels), name, clean, outputs[condition], metrics))
    return cases


def _print_summary(summary: dict[str, Any], written: list[Path]) -> None:
    console = Console()
    table = Table(title=f"{TITLES['psnr']} / SSIM, mean over {summary['images']} images ({summary['title']})")
    table.add_column("method")
    for key in summary["dose_keys"]:
        table.add_column(key, justify="right")
    for method in summary["methods"]:
        table.add_row(
            LABELS.get(method, method),
            *(
                f"{summary['metrics'][k][method]['psnr']['mean']:.2f} / {summary['metrics'][k][method]['ssim']['mean']:.3f}"
                for k in summary["dose_keys"]
            ),
        )
    console.print(table)
    for row in (summary.get("dose_reduction") or {}).get("psnr", []):
        console.print(f"dose {row['dose']:g}: model PSNR {row['value']:.2f} dB = noisy input at dose {row['text']}")
    for note in summary["notes"]:
        console.print(f"[yellow]{note}[/yellow]")
    console.print(f"report: {written[0]}  ({summary['seconds']:.0f} s)")
