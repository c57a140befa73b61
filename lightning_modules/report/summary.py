"""From per-image rows to the numbers of a report: means with CIs, paired differences, dose reduction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from lightning_modules.nets.metrics import METRIC_NAMES
from lightning_modules.report.stats import CI_METHOD, equivalent_dose, mean_ci
from lightning_modules.report.study import PAIRED, Condition, DoseStudy, StudyResult


def dose_key(condition: Condition) -> str:
    """``"1"``, ``"0.05"``, ... or ``"paired"``: the JSON key and the label of a condition."""
    return PAIRED if condition == PAIRED else f"{float(condition):g}"


def _means(rows: Sequence[dict[str, Any]]) -> dict[str, dict]:
    return {m: mean_ci([r[m] for r in rows]) for m in METRIC_NAMES}


def summarise_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{dose: {method: {metric: {mean, std, n, ci95}}}}`` over the per-image rows."""
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[dose_key(row["dose"])][row["method"]].append(row)
    return {dose: {method: _means(group) for method, group in by_method.items()} for dose, by_method in groups.items()}


def summarise_reference(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict]]:
    """``{dose: {metric: {mean, std, n, ci95}}}`` of the noisy reference curve."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[dose_key(row["dose"])].append(row)
    return {dose: _means(group) for dose, group in groups.items()}


def paired_differences(rows: Sequence[dict[str, Any]], versus: Sequence[str]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{dose: {"model − X": {metric: mean_ci}}}``: per-image differences, model minus each method.

    A paired comparison on the same images and noise, so its interval is much tighter than the
    difference of two separate intervals.
    """
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)  # (dose, method) -> {file: row}
    for row in rows:
        by_key[(dose_key(row["dose"]), row["method"])][row["file"]] = row
    result: dict[str, dict[str, dict[str, dict]]] = defaultdict(dict)
    for dose in sorted({d for d, _ in by_key}, key=_sort_key):
        model = by_key.get((dose, "model"), {})
        for other in versus:
            base = by_key.get((dose, other), {})
            files = [f for f in model if f in base]
            if files:
                result[dose][f"model − {other}"] = {
                    m: mean_ci([model[f][m] - base[f][m] for f in files]) for m in METRIC_NAMES
                }
    return dict(result)


def _sort_key(key: str) -> float:
    return -float(key) if key != PAIRED else 0.0


def reference_curve(reference: dict[str, dict[str, dict]], metric: str) -> tuple[list[float], list[float]]:
    """Doses (increasing) and mean ``metric`` of the noisy reference curve."""
    doses = sorted(float(d) for d in reference)
    return doses, [reference[f"{d:g}"][metric]["mean"] for d in doses]


def dose_reduction(
    metrics: dict[str, dict[str, dict]],
    reference: dict[str, dict[str, dict]],
    metric: str = "psnr",
    method: str = "model",
) -> list[dict[str, Any]]:
    """For each evaluated dose: the dose at which the unprocessed input reaches ``method``'s mean ``metric``.

    Rows ``{dose, value, equivalent_dose, relation, factor, text}`` with ``factor = equivalent_dose / dose``
    (how many times more dose the unprocessed acquisition needs for the same mean ``metric``).
    """
    ref_doses, ref_values = reference_curve(reference, metric)
    rows = []
    for key in sorted((k for k in metrics if k != PAIRED), key=_sort_key):
        if method not in metrics[key]:
            continue
        dose, value = float(key), metrics[key][method][metric]["mean"]
        match = equivalent_dose(ref_doses, ref_values, value)
        rows.append(
            {
                "dose": dose,
                "value": value,
                "equivalent_dose": match.dose,
                "relation": match.relation,
                "bound": match.bound,
                "factor": match.dose / dose,
                "text": match.text(),
            }
        )
    return rows


def build_summary(
    study: DoseStudy, result: StudyResult, inputs: str, baselines: list[str], notes: list[str]
) -> dict[str, Any]:
    """Every number of the report: means/CIs per dose and method, differences, dose reduction, timing."""
    metrics = summarise_rows(result.rows)
    summary: dict[str, Any] = {
        "inputs": inputs,
        "dose_keys": [dose_key(c) for c in study.conditions],
        "methods": study.methods,
        "baselines": baselines,
        "transform": study.stabiliser(study.conditions[0]).describe() if baselines else "",
        "images": len({row["file"] for row in result.rows}),
        "data_range": 1.0,
        "ci_method": CI_METHOD,
        "metrics": metrics,
        "differences": paired_differences(result.rows, ["noisy", *baselines]),
        "seconds_per_image": {m: result.seconds[m] / result.calls[m] for m in study.methods if result.calls.get(m)},
        "notes": notes,
    }
    if result.reference:
        reference = summarise_reference(result.reference)
        summary["reference"] = reference
        summary["dose_reduction"] = {
            "method": "equal mean metric of the noisy input, linear in log(dose) between reference doses",
            "psnr": dose_reduction(metrics, reference, "psnr"),
            "ssim": dose_reduction(metrics, reference, "ssim"),
        }
    return summary
