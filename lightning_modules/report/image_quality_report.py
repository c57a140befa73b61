"""The image-quality section inside a model report: settings from ``image_quality:``, the methods and
backgrounds of the report, and its table (CSV, Markdown, ``summary.json``) and figures."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_csv, atomic_write_text
from lightning_modules.classical.baselines import LABELS, apply_baseline
from lightning_modules.classical.stabilisers import stabiliser_for
from lightning_modules.report.document import markdown_table
from lightning_modules.report.image_quality_figures import plot_detectability, plot_mtf, plot_nps
from lightning_modules.report.image_quality_study import (
    NOISY,
    Background,
    Detection,
    EdgeResult,
    ImageQuality,
    Method,
    Settings,
    dose_at_equal_psnr,
    measure_image_quality,
    roi_corners,
)
from lightning_modules.report.inputs import EvalImage, subset

# relation: "=", or "<" / ">" when a dose at equal quality lies below / above the dose grid (value: the grid's end)
CSV_COLUMNS = ["method", "dose", "measure", "condition", "value", "ci95_low", "ci95_high", "relation"]
NESTED = {
    "nps": ("level", "image", "images", "roi"),
    "edge": ("image", "angle", "blur", "level", "steps", "realisations"),
}


def settings_from_config(node: DictConfig | None, report_doses: Sequence[float]) -> Settings | None:
    """The section's :class:`Settings` from ``image_quality:``; ``None`` when it is off."""
    if node is None or not node.get("enabled", False):
        return None
    values: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    values.pop("enabled")
    doses = values.pop("doses", None)
    flat: dict[str, Any] = {"doses": tuple(float(d) for d in (doses if doses is not None else report_doses))}
    for group, keys in NESTED.items():
        for key, value in (values.pop(group, None) or {}).items():
            if key not in keys:
                raise ValueError(f"image_quality.{group}.{key} is unknown; use one of {list(keys)}")
            flat[f"{group}_{key}"] = value
    known = set(Settings.__dataclass_fields__)
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"image_quality.{key} is unknown")
        flat[key] = value
    # YAML lists become tuples of floats, as the sequence fields of Settings are typed
    return Settings(**{k: tuple(float(v) for v in x) if isinstance(x, list) else x for k, x in flat.items()})


def build_methods(
    baselines: Sequence[str], noise: Any, predict: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, Method]:
    """The noisy input, each classical baseline (inside the noise model's stabilising transform) and the
    report's network (``DoseStudy.predict``: fusion, intensity map, TTA as the report runs it)."""

    def baseline(name: str) -> Method:
        return lambda noisy, dose: np.stack(
            [apply_baseline(name, image.astype(np.float32), stabiliser_for(noise, dose)) for image in noisy]
        )

    def network(noisy: np.ndarray, dose: float) -> np.ndarray:
        return predict(torch.from_numpy(noisy.astype(np.float32))[:, None])[:, 0].numpy()

    return {NOISY: lambda noisy, dose: noisy, **{name: baseline(name) for name in baselines}, "model": network}


def load_backgrounds(images: Sequence[EvalImage], settings: Settings) -> list[Background]:
    """``settings.images`` clean radiographs evenly spaced over the split, with their ROI grids."""
    backgrounds = []
    for image in subset(list(images), settings.images):
        clean = image.load(image.clean)[0].numpy().astype(np.float64)
        backgrounds.append(Background(image.name, clean, roi_corners(clean, settings.roi_size, settings.roi_levels)))
    return backgrounds


# --- tables ----------------------------------------------------------------------------------------------


def _condition(key: tuple[float, float]) -> str:
    return f"disc {key[0]:g} px, {100 * key[1]:g} %"


def table_rows(result: ImageQuality, psnr_metrics: dict | None) -> list[dict[str, Any]]:
    """One CSV row per method, dose, measure and condition (value with its 95 % interval when known)."""
    rows: list[dict[str, Any]] = []

    def add(method: str, dose: Any, measure: str, condition: str, value: float, ci=("", ""), relation: str = ""):
        key = f"{dose:g}" if isinstance(dose, float) else dose
        rows.append(dict(zip(CSV_COLUMNS, [method, key, measure, condition, value, *ci, relation])))

    flat = f"flat {result.settings.nps_level:g}"
    for dose, by_method in result.nps.items():
        for method, spectrum in by_method.items():
            add(method, dose, "noise_std", flat, spectrum.std)
            add(method, dose, "nps_mean_frequency", flat, spectrum.mean_frequency)
            add(method, dose, "nps_peak_frequency", flat, spectrum.peak_frequency)
    for step, by_dose in result.mtf.items():
        edge_step = f"edge step {step:g}"
        add("phantom", "", "mtf50", edge_step, by_dose["phantom"].mtf50)
        for dose in (d for d in by_dose if d != "phantom"):
            for method, edge in by_dose[dose].items():
                add(method, dose, "mtf50", edge_step, edge.mtf50)
                add(method, dose, "mtf10", edge_step, edge.mtf10)
    for condition, by_dose in result.detection.items():
        disc = _condition(condition)
        for dose, by_method in by_dose.items():
            for method, found in by_method.items():
                add(method, dose, "auc", disc, found.auc, found.auc_ci)
                add(method, dose, "d_prime", disc, found.d_prime, found.d_prime_ci)
        for method, equal in result.equal_detectability[condition].items():
            add(method, "", "dose_equal_d_prime", disc, equal.dose, (equal.low, equal.high), equal.relation)
    for method in result.methods:
        found = dose_at_equal_psnr(psnr_metrics, method) if psnr_metrics else None
        if found is not None:
            add(method, "", "dose_equal_psnr", "report images", found.dose, relation=found.relation)
    return rows


def _f(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _mtf_cells(edges: list[EdgeResult]) -> list[str]:
    return [_f(e.mtf50) for e in edges] + [_f(e.mtf10) for e in edges]


def noise_resolution_table(result: ImageQuality) -> str:
    steps = list(result.mtf)
    header = ["method", "dose", "noise σ", "NPS mean freq.", "NPS peak freq."]
    header += [f"MTF{k} (step {s:g})" for k in (50, 10) for s in steps]
    rows = [["phantom (no noise)", "–", "0", "–", "–", *_mtf_cells([result.mtf[s]["phantom"] for s in steps])]]
    for dose, by_method in result.nps.items():
        for method in result.methods:
            spectrum = by_method[method]
            row = [LABELS.get(method, method), f"{dose:g}", f"{spectrum.std:.4f}"]
            row += [_f(spectrum.mean_frequency), _f(spectrum.peak_frequency)]
            rows.append(row + _mtf_cells([result.mtf[s][dose][method] for s in steps]))
    return markdown_table(header, rows)


def _detection_cell(found: Detection) -> str:
    (d_low, d_high), (a_low, a_high) = found.d_prime_ci, found.auc_ci
    return f"{found.d_prime:.2f} [{d_low:.2f}, {d_high:.2f}]; AUC {found.auc:.3f} [{a_low:.3f}, {a_high:.3f}]"


def detectability_table(result: ImageQuality, condition: tuple[float, float]) -> str:
    by_dose = result.detection[condition]
    doses = sorted(by_dose, reverse=True)
    rows = [[LABELS.get(m, m), *(_detection_cell(by_dose[d][m]) for d in doses)] for m in result.methods]
    return markdown_table(["method \\ dose", *[f"{d:g}" for d in doses]], rows)


def equal_dose_table(result: ImageQuality, psnr_metrics: dict | None) -> str:
    conditions = list(result.detection)
    header = ["method", *[f"dose at equal d′ ({_condition(c)})" for c in conditions], "dose at equal PSNR"]
    rows = []
    for method in result.methods:
        row = [LABELS.get(method, method)]
        row += [result.equal_detectability[c][method].text() for c in conditions]
        found = dose_at_equal_psnr(psnr_metrics, method) if psnr_metrics else None
        row.append("–" if found is None else found.text())
        rows.append(row)
    return markdown_table(header, rows)


def markdown_section(result: ImageQuality, psnr_metrics: dict | None, figures: dict[str, str]) -> list[str]:
    """The report's "Diagnostic image quality" section."""
    s = result.settings
    lines = [
        "## Diagnostic image quality (NPS, MTF/TTF, model-observer detectability)",
        "",
        f"Measured on simulated acquisitions at doses {', '.join(f'{d:g}' for d in s.all_doses)} with the report's "
        f"noise model; seed {s.seed}. How each measure is computed: docs/evaluation.md.",
        "",
        "### Noise and resolution",
        "",
        f"Noise σ: the square root of the NPS integral (pixel standard deviation) of {s.nps_images} flat fields "
        f"of {s.nps_image}² px at intensity {s.nps_level:g} ({s.nps_roi}² ROIs, half-overlapping). Mean/peak "
        "frequency of the NPS in cycles/pixel (white noise ≈ 0.38 mean): lower means blotchier noise. MTF50 / "
        f"MTF10 in cycles/pixel from a slanted edge ({s.edge_angle:g}°, blur σ {s.edge_blur:g} px, level "
        f"{s.edge_level:g}, mean of {s.edge_realisations} noise draws); – : not reached below Nyquist.",
        "",
        noise_resolution_table(result),
        "",
        f"![noise power spectra]({figures['nps']})",
        "",
        f"![MTF / TTF]({figures['mtf']})",
        "",
        "### Low-contrast detectability (channelized Hotelling observer)",
        "",
        f"{result.rois} matched signal-present / signal-absent ROIs of {s.roi_size}² px from "
        f"{len(result.backgrounds)} clean radiographs ({', '.join(result.backgrounds)}); {s.channels} Laguerre–Gauss "
        f"channels of width {s.channel_width:g} × the disc diameter; template trained on one half of the pairs, "
        f"tested on the other, and back. Cells: d′ [bootstrap 95 %]; AUC [95 %] ({s.bootstrap} resamples of the pairs).",
        "",
    ]
    for condition in result.detection:
        lines += [f"#### {_condition(condition)}", "", detectability_table(result, condition), ""]
    lines += [
        f"![d′ against dose]({figures['detectability']})",
        "",
        "### Dose at equal detectability",
        "",
        "The lowest dose at which each method's d′ reaches the noisy input's d′ at full dose (log-dose "
        "interpolation on the dose grid, [bootstrap 95 %]; `<` the lowest dose already exceeds it, `>` not even "
        "dose 1 reaches it); beside it the same for the mean PSNR of the report's images. Dose saved = 1 − dose.",
        "",
        equal_dose_table(result, psnr_metrics),
        "",
    ]
    return lines


def run_section(
    settings: Settings,
    noise: Any,
    baselines: Sequence[str],
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[EvalImage],
    psnr_metrics: dict | None,
    out_dir: Path,
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Measure the section and write its figures, ``image_quality.csv`` and ``image_quality.md``; returns
    (what ``summary.json`` holds of it: settings, table rows, timings; the figures; the Markdown lines)."""
    methods = build_methods(baselines, noise, predict)
    result = measure_image_quality(settings, noise, methods, load_backgrounds(images, settings))
    figures = {name: f"figures/{name}.png" for name in ("nps", "mtf", "detectability")}
    plot_nps(result, out_dir / figures["nps"])
    plot_mtf(result, out_dir / figures["mtf"])
    plot_detectability(result, out_dir / figures["detectability"])
    rows = table_rows(result, psnr_metrics)
    atomic_write_csv(out_dir / "image_quality.csv", rows, CSV_COLUMNS)
    lines = markdown_section(result, psnr_metrics, figures)
    atomic_write_text(out_dir / "image_quality.md", "\n".join(lines) + "\n")
    summary = {
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "rois": result.rois,
        "backgrounds": result.backgrounds,
        "rows": rows,
        "seconds": result.seconds,
    }
    return summary, figures, lines
