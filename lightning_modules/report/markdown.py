"""The Markdown text of a model report, from its summary (the same numbers as ``summary.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning_modules.classical.baselines import DESCRIPTIONS, LABELS
from lightning_modules.inference.evaluate import left_out
from lightning_modules.report.document import markdown_table
from lightning_modules.report.stats import CI_METHOD
from lightning_modules.report.study import PAIRED

FORMATS = {"psnr": "{:.2f}", "ssim": "{:.4f}", "mse": "{:.3e}"}
TITLES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "mse": "MSE"}


def fmt(metric: str, value: float) -> str:
    return FORMATS[metric].format(value)


def with_ci(metric: str, stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "–" + left_out(stat)
    half = (stat["ci95"][1] - stat["ci95"][0]) / 2
    return f"{fmt(metric, stat['mean'])} ± {fmt(metric, half)}{left_out(stat)}"


def dose_label(key: str) -> str:
    return "real pairs" if key == PAIRED else key


def method_table(summary: dict[str, Any], metric: str) -> str:
    """Rows: methods; columns: doses; cells: mean ± 95 % CI half-width."""
    doses, metrics = summary["dose_keys"], summary["metrics"]
    rows = [
        [LABELS.get(m, m), *(with_ci(metric, metrics[d][m][metric]) if m in metrics[d] else "–" for d in doses)]
        for m in summary["methods"]
    ]
    return markdown_table(["method \\ dose", *map(dose_label, doses)], rows)


def _reduction_cells(metric: str, row: dict[str, Any]) -> list[str]:
    """The model's value, the equivalent dose and the factor of one ``dose_reduction`` row."""
    if row["relation"] == "=":
        factor = f"×{row['factor']:.3g}"
    else:
        factor = f"{row['relation']} ×{row['bound'] / row['dose']:.3g} (≈ ×{row['factor']:.3g} extrapolated)"
    return [fmt(metric, row["value"]), row["text"], factor]


def dose_reduction_section(summary: dict[str, Any]) -> list[str]:
    reduction = summary.get("dose_reduction")
    if not reduction:
        return []
    ref = ", ".join(f"{d:g}" for d in summary["reference_doses"])
    rows = [
        [f"{p['dose']:g}", *_reduction_cells("psnr", p), *_reduction_cells("ssim", s)]
        for p, s in zip(reduction["psnr"], reduction["ssim"])
    ]
    sentences = [
        f"denoised {100 * r['dose']:.3g} % dose ≈ noisy {100 * r['equivalent_dose']:.3g} % dose"
        for r in reduction["psnr"]
        if r["relation"] == "="
    ]
    return [
        "## Dose-reduction factor",
        "",
        "**How it is computed.** The unprocessed low-dose input is simulated, with the same per-image noise "
        f"seeds, at the reference doses {ref}; its mean PSNR over the images at each dose gives the curve "
        "PSNR_noisy(dose). For each dose *d* the model was run at, the *equivalent dose* d_eq is the dose at "
        "which that curve reaches the model's mean PSNR at *d*: linear interpolation of PSNR against log(dose) "
        "between the two neighbouring reference doses (the curve is first made non-decreasing in dose). "
        "The dose-reduction factor is d_eq / d: an unprocessed acquisition needs that many times the dose to "
        "reach the same mean PSNR. Beyond the highest (below the lowest) reference dose the end segment is "
        "extrapolated and the value is marked `>` (`<`). The same is repeated with SSIM as a second opinion; "
        "a factor below 1 means the model is worse than the unprocessed input.",
        "",
        markdown_table(
            [
                "model dose",
                "model PSNR (dB)",
                "noisy input reaches it at dose",
                "factor (PSNR)",
                "model SSIM",
                "equal-SSIM dose",
                "factor (SSIM)",
            ],
            rows,
        ),
        "",
        ("In words (PSNR): " + "; ".join(sentences) + ".") if sentences else "",
        "",
    ]


def differences_section(summary: dict[str, Any]) -> list[str]:
    diffs = summary.get("differences") or {}
    pairs = sorted({p for by_pair in diffs.values() for p in by_pair})
    if not pairs:
        return []
    header = ["dose"] + [
        f"{TITLES[m]}: model − {LABELS.get(p.split(' − ')[-1], p)}" for p in pairs for m in ("psnr", "ssim")
    ]
    rows = [
        [
            dose_label(dose),
            *(_signed(m, by_pair[p][m]) if p in by_pair else "–" for p in pairs for m in ("psnr", "ssim")),
        ]
        for dose, by_pair in diffs.items()
    ]
    return [
        "## Model against each method, image by image",
        "",
        "Mean per-image difference (model minus the other method) on the same images and noise, with its "
        "95 % Student-t interval (paired comparison: an interval excluding 0 is a real difference on this data).",
        "",
        markdown_table(header, rows),
        "",
    ]


def _signed(metric: str, stat: dict[str, Any]) -> str:
    digits = 2 if metric == "psnr" else 4
    if stat["mean"] is None:
        return "–" + left_out(stat)
    low, high = stat["ci95"]
    return f"{stat['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]{left_out(stat)}"


def detail_table(summary: dict[str, Any]) -> str:
    header = ["dose", "method", "n"]
    header += [f"{m.upper()} {c}" for m in ("psnr", "ssim") for c in ("mean", "std", "95 % CI")] + ["MSE mean"]
    rows = []
    for dose in summary["dose_keys"]:
        metrics = summary["metrics"][dose]
        for method in (m for m in summary["methods"] if m in metrics):
            stats = metrics[method]
            row = [dose_label(dose), LABELS.get(method, method), stats["psnr"]["n"]]
            for metric, digits in (("psnr", 2), ("ssim", 4)):
                stat = stats[metric]
                if stat["mean"] is None:
                    row += ["–" + left_out(stat), "–", "–"]
                    continue
                low, high = stat["ci95"]
                row += [
                    f"{stat['mean']:.{digits}f}{left_out(stat)}",
                    f"{stat['std']:.{digits}f}",
                    f"[{low:.{digits}f}, {high:.{digits}f}]",
                ]
            rows.append([*row, f"{stats['mse']['mean']:.3e}"])
    return markdown_table(header, rows)


def methods_section(summary: dict[str, Any]) -> list[str]:
    lines = [
        "## How the numbers are computed",
        "",
        "- **Metrics**: torchmetrics PSNR and SSIM (Gaussian window 11, σ 1.5) and the MSE, with `data_range=1.0`, "
        "of each full image against its high-dose (clean) target, on [0, 1] intensities (8-bit / 255, 16-bit / 65535). "
        "Outputs are clamped to [0, 1]. Every value is per image; tables show means over images. "
        "The test suite checks these metrics against scikit-image within 0.01 dB.",
        f"- **Intervals**: {CI_METHOD}.",
    ]
    if summary["inputs"] == "simulated":
        lines.append(
            f"- **Low-dose inputs**: simulated from each clean image with `{summary['noise']}` at each dose. "
            f"The noise of image *i* of the split is drawn from seed {summary['seed']} + *i* (the data modules' "
            "test-noise seeds), so every method sees the same noisy image and the numbers repeat exactly."
        )
    else:
        lines.append(
            "- **Low-dose inputs**: the real low-dose partners of the pairs. For the classical baselines the "
            f"degradation `low = g·high + b + noise` was fitted by least squares on the {summary['affine_fit']['split']} "
            f"split ({summary['affine_fit']['pairs']} pairs; pixels clipped at 0 or 1 left out): "
            f"g = {summary['affine_fit']['gain']:.4f}, b = {summary['affine_fit']['offset']:.4f}, "
            f"noise std {summary['affine_fit']['noise']:.4f}."
        )
    for name in summary["baselines"]:
        lines.append(f"- **{LABELS[name]}**: {DESCRIPTIONS[name]}, applied after: {summary['transform']}.")
    precision = "bf16 autocast" if summary["precision"] == "bf16" else "fp32"
    tta = f", averaged over {summary['tta']} flipped/transposed views (tta)" if summary.get("tta") else ""
    lines.append(
        f"- **Model**: the network of the checkpoint below, on full images, {precision}, on {summary['device']}{tta}."
    )
    intensity = summary.get("intensity_map")
    if intensity:  # a self-supervised model returns low-dose intensities
        lines.append(
            f"- **Intensity map** (self-supervised model, to full-dose intensities): {intensity['gain']:.4f} · output "
            f"+ {intensity['offset']:.4f}, least squares on the {intensity['split']} split ({intensity['images']} images)."
        )
    return lines + [""]


def _details(summary_line: str, yaml_text: str) -> list[str]:
    """A folded YAML block."""
    return [
        f"<details><summary>{summary_line}</summary>",
        "",
        "```yaml",
        yaml_text.rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]


def provenance_section(summary: dict[str, Any], run_config_yaml: str, report_config_yaml: str) -> list[str]:
    subset = " (evenly spaced, max_images)" if summary["images"] < summary["split_images"] else ""
    return [
        "## Provenance",
        "",
        f"- run: `{summary['run']}`",
        f"- data: `{summary['data_root']}`, split `{summary['split']}`, {summary['images']} of "
        f"{summary['split_images']} images{subset}",
        f"- the run's data: {'; '.join(f'{k}: `{v}`' for k, v in summary['run_data'].items())}",
        f"- report written {summary['created']}, in {summary['seconds']:.0f} s",
        "",
        markdown_table(["checkpoint", ""], [[k, str(v)] for k, v in summary["checkpoint"].items()], align_right=False),
        "",
        markdown_table(["software", "version"], list(summary["versions"].items()), align_right=False),
        "",
        *_details("run config (run_config.yaml)", run_config_yaml),
        *_details("report config", report_config_yaml),
    ]


def training_dose(summary: dict[str, Any]) -> str:
    """What the model was trained on, so a reader knows which doses are in or out of its training range."""
    data = summary["run_data"]
    if "noise" not in data:
        return "The model was trained on real low-dose pairs."
    dose = data.get("dose")
    if isinstance(dose, list):
        return f"The model was trained dose-blind on doses drawn from {dose[0]:g} to {dose[1]:g} (log-uniform)."
    return f"The model was trained at dose {dose:g} only."


def render_report(
    summary: dict[str, Any],
    figures: dict[str, str],
    run_config_yaml: str,
    report_config_yaml: str,
    sections: Sequence[str] = (),
) -> str:
    """The whole report; ``figures`` maps ``"curves"``, ``"panels <dose>"`` and ``"flat region <dose>"``
    to relative PNG paths; ``sections`` (Markdown lines, e.g. the image-quality section) go before the
    table of all numbers."""
    methods = ", ".join(LABELS.get(m, m) for m in summary["methods"])
    intro = (
        f"{summary['images']} {summary['split']} images of `{summary['data_root']}`; "
        + (
            f"inputs simulated at doses {', '.join(dose_label(d) for d in summary['dose_keys'])}"
            if summary["inputs"] == "simulated"
            else "real low-dose pairs"
        )
        + f"; methods: {methods}. Checkpoint `{summary['checkpoint']['path']}`."
    )
    lines = [f"# Evaluation report: {summary['title']}", "", intro, "", training_dose(summary), ""]
    lines += [f"> {note}" for note in summary["notes"]] + ([""] if summary["notes"] else [])
    lines += [
        "## Results: method × dose",
        "",
        f"Mean over images ± half-width of the 95 % confidence interval of the mean (n = {summary['images']}).",
        "",
    ]
    for metric in ("psnr", "ssim", "mse"):
        lines += [f"### {TITLES[metric]}", "", method_table(summary, metric), ""]
    if "curves" in figures:
        lines += ["## Quality against dose", "", f"![PSNR and SSIM against dose]({figures['curves']})", ""]
    lines += dose_reduction_section(summary)
    lines += differences_section(summary)
    panels = [(k.split(" ", 1)[1], v) for k, v in figures.items() if k.startswith("panels ")]
    if panels:
        lines += [
            "## Example images",
            "",
            "Best, median and worst image by model PSNR at each dose. Columns: noisy input, baselines, model, clean "
            "target, absolute model error (one colour scale per figure). Under each row, the window with the largest "
            "mean model error, enlarged (yellow box above). Grey levels: [0, 1] for every image.",
            "",
        ]
        for dose, path in panels:
            heading = "Real pairs" if dose == PAIRED else f"Dose {dose}"
            lines += [f"### {heading}", "", f"![examples at {dose_label(dose)}]({path})", ""]
            flat = figures.get(f"flat region {dose}")
            if flat:
                lines += [
                    "The median image's flattest body region (smallest spread of the clean image among windows "
                    "brighter than 0.2), enlarged without smoothing and on the clean crop's grey range: where "
                    "leftover noise or a pixel-scale texture shows first.",
                    "",
                    f"![flattest region at {dose_label(dose)}]({flat})",
                    "",
                ]
    lines += list(sections)
    lines += ["## All numbers", "", detail_table(summary), ""]
    timing = [[LABELS.get(m, m), f"{s:.3f}"] for m, s in summary["seconds_per_image"].items()]
    lines += ["## Time per image", "", markdown_table(["method", "seconds per image and dose"], timing), ""]
    lines += methods_section(summary)
    lines += provenance_section(summary, run_config_yaml, report_config_yaml)
    return "\n".join(lines)
