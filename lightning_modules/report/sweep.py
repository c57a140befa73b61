"""Summary of a Hydra multirun: one row per job (swept values, status, test metrics), a table and a plot.

Each job folder holds ``.hydra/overrides.yaml``; its test metrics come from ``results/summary.json``
(written by ``scripts/test.py``) or else from the ``test/*`` scalars of its TensorBoard events (written
by ``scripts/train.py`` with ``test=true``). A job that ended with an exception has a
``job_status.json`` saying so (:mod:`lightning_modules.runs.hydra`), one stopped with Ctrl+C says
``INTERRUPTED`` there and is listed as interrupted, with how to continue it. A job without metrics and
without that file was killed or is still running; it is listed as failed, never dropped. Jobs of the
sweep that never got a folder are listed as not started.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from datamodules.io.atomic import atomic_write_csv
from lightning_modules.report.document import markdown_table, write_document
from lightning_modules.report.figures import save_figure
from lightning_modules.runs.folders import CHECKPOINT_DIR, RUN_CONFIG
from lightning_modules.runs.hydra import STATUS_FILE

METRICS = ("test/psnr", "test/ssim", "test/mse", "test/psnr_noisy", "val/psnr_best")
HEADINGS = {
    "test/psnr": "test PSNR",
    "test/ssim": "test SSIM",
    "test/mse": "test MSE",
    "test/psnr_noisy": "noisy PSNR",
    "val/psnr_best": "best val PSNR",
    "test/ssim_skimage": "test SSIM (scikit-image)",
}
SKIMAGE_SSIM = "test/ssim_skimage"
RECENT_SECONDS = 300
STATUS_CELLS = {"failed": "**FAILED**", "interrupted": "**interrupted**", "not started": "*not started*"}
RUN_INFO = "run_info.json"


@dataclass
class Job:
    """One job of the sweep: what it ran, how it ended and what it measured."""

    number: int
    overrides: list[str]
    folder: Path | None = None
    status: str = "not started"
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def values(self) -> dict[str, str]:
        """``key: value`` of each override, without its ``+``/``~`` prefix."""
        return {key.lstrip("+~"): value for key, _, value in (o.partition("=") for o in self.overrides)}


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job of the multirun in ``sweep_dir``, in job order, with status and metrics."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep={sweep_dir}: folder not found")
    jobs: dict[int, Job] = {}
    for folder in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        number = _job_number(folder)
        overrides = _yaml(folder / ".hydra" / "overrides.yaml") or []
        job = Job(number, [str(o) for o in overrides], folder)
        job.metrics, job.source = job_metrics(folder)
        job.status, job.detail = job_status(folder, job.metrics)
        jobs[number] = job
    if not jobs:
        raise FileNotFoundError(f"sweep={sweep_dir}: no job folders (subfolders with .hydra/) inside")
    for number, overrides in enumerate(expected_jobs(sweep_dir) or []):
        if number not in jobs:
            jobs[number] = Job(number, overrides, detail="no job folder: the sweep stopped before this job")
    return [jobs[n] for n in sorted(jobs)]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def _job_number(folder: Path) -> int:
    hydra_cfg = _yaml(folder / ".hydra" / "hydra.yaml") or {}
    number = ((hydra_cfg.get("hydra") or {}).get("job") or {}).get("num")
    if isinstance(number, int):
        return number
    prefix = folder.name.split("_", 1)[0]
    return int(prefix) if prefix.isdigit() else 10_000 + abs(hash(folder.name)) % 10_000


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The override list of every job the basic sweeper planned (from ``multirun.yaml``), or ``None``."""
    config = _yaml(sweep_dir / "multirun.yaml")
    hydra_cfg = (config or {}).get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        arguments += list((hydra_cfg.get("overrides") or {}).get("task") or [])
        parsed = OverridesParser.create().parse_overrides(arguments)
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception:  # noqa: BLE001 - Hydra internals may change; then only existing folders are listed
        return None


def job_metrics(folder: Path) -> tuple[dict[str, float], str]:
    """Test metrics of a job and where they came from (``results/summary.json`` or ``tensorboard``)."""
    summary = _json(folder / "results" / "summary.json")
    if summary and "metrics" in summary:
        means = {k: v["mean"] for k, v in summary["metrics"].items()}
        metrics = {f"test/{k}": float(v) for k, v in means.items() if f"test/{k}" in METRICS and v is not None}
        metrics.update({k: v for k, v in tensorboard_scalars(folder).items() if k.startswith("val/")})
        return metrics, "results/summary.json"
    scalars = tensorboard_scalars(folder)
    return scalars, ("tensorboard" if scalars else "")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tensorboard_scalars(folder: Path) -> dict[str, float]:
    """Last value of each ``test/*`` scalar, the best ``val/psnr`` and the last epoch, from TensorBoard."""
    event_dir = folder / "tensorboard"
    if not any(event_dir.glob("**/events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # one INFO line per event file otherwise
    events = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags().get("scalars", []))
    values = {tag: events.Scalars(tag)[-1].value for tag in tags if tag in METRICS and tag != "val/psnr_best"}
    # Self-supervised runs are picked by the PSNR after their intensity map; their raw val/psnr compares
    # denoised low-dose intensities with full dose.
    selection = "val/psnr_mapped" if "val/psnr_mapped" in tags else "val/psnr"
    if selection in tags:
        values["val/psnr_best"] = max(e.value for e in events.Scalars(selection))
    if "epoch" in tags:
        values["epochs"] = int(max(e.value for e in events.Scalars("epoch"))) + 1
    return {k: float(v) for k, v in values.items()}


def job_status(folder: Path, metrics: dict[str, float]) -> tuple[str, str]:
    """``("ok" | "failed" | "interrupted", detail)``: from ``job_status.json`` when Hydra's callback (or
    training's Ctrl+C handler) wrote one, else inferred."""
    record = _json(folder / STATUS_FILE)
    if record is not None:
        if record.get("status") == "FAILED":
            return "failed", str(record.get("error", "failed"))
        if record.get("status") == "INTERRUPTED":
            return "interrupted", str(record.get("hint") or record.get("error") or "interrupted (Ctrl+C)")
        return "ok", "" if "test/psnr" in metrics else "completed without test metrics (test=false?)"
    if "test/psnr" in metrics:
        return "ok", ""
    run_cfg = _yaml(folder / RUN_CONFIG) or {}
    has_last = (folder / CHECKPOINT_DIR / "last.ckpt").is_file()
    if run_cfg.get("test") is False and has_last and "val/psnr_best" in metrics:
        return "ok", "trained with test=false: validation metrics only"
    run_info = _json(folder / RUN_INFO) or {}  # training's own record of its attempts, when present
    if not (folder / RUN_CONFIG).is_file():
        reason = "stopped before training started (no run_config.yaml)"
    elif run_info.get("completed"):
        reason = "training completed but no test metrics were recorded"
    elif not has_last:
        reason = "stopped before its first checkpoint"
    else:
        reason = f"stopped after {int(metrics.get('epochs', 0))} epoch(s), before testing"
    age = time.time() - max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])
    running = f"; files changed {age:.0f} s ago, it may still be running" if age < RECENT_SECONDS else ""
    return "failed", f"{reason}; no {STATUS_FILE} (killed, or from before status files){running}"


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (all keys when there is one job), in order."""
    keys: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.values.items():
            keys.setdefault(key, set()).add(value)
    varying = [k for k, v in keys.items() if len(v) > 1]
    return varying or list(keys)


def summarise_sweep(
    sweep_dir: str | Path, out_dir: str | Path, html: bool = True, images: bool = False
) -> dict[str, Any]:
    """Write ``sweep.csv``, ``sweep.md`` (+ ``.html``) and ``sweep.png`` into ``out_dir``; return the table.

    ``images``: re-evaluate every finished job's best checkpoint on its test split for scikit-image's
    SSIM too and draw one zoomed crop per job (``sweep_crops.png``; :mod:`~lightning_modules.report.sweep_images`).
    """
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    jobs = read_jobs(sweep_dir)
    keys = swept_keys(jobs)
    crops_figure = _evaluate_images(jobs, keys, out_dir / "sweep_crops.png") if images else None
    metrics = [*METRICS, *([SKIMAGE_SSIM] if images else [])]
    rows = [_row(job, keys, metrics) for job in jobs]
    atomic_write_csv(out_dir / "sweep.csv", rows, ["job", *keys, "status", *metrics, "epochs", "source", "detail"])
    plot_sweep(jobs, keys, out_dir / "sweep.png")
    counts = {s: sum(j.status == s for j in jobs) for s in ("ok", "failed", "interrupted", "not started")}
    cells = [
        {**r, "status": STATUS_CELLS.get(r["status"], r["status"]), **{m: _fmt(m, r[m]) for m in metrics}} for r in rows
    ]
    shown = ["job", *keys, "status", *metrics, "detail"]
    table = markdown_table(
        ["job", *keys, "status", *(HEADINGS[m] for m in metrics), "detail"], [[c[k] for k in shown] for c in cells]
    )
    lines = [
        f"# Sweep summary: {sweep_dir.name}",
        "",
        f"`{sweep_dir.resolve()}`: {len(jobs)} jobs, {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['interrupted']} interrupted, {counts['not started']} not started. Test metrics are means over the job's test split (data_range 1.0); "
        "each job's own data and dose.",
        "",
        table,
        "",
        "![test PSNR of every job](sweep.png)",
        "",
    ]
    if crops_figure:
        lines += [
            "Each job's best checkpoint again on its test split in fp32: scikit-image's SSIM "
            "(7×7 uniform window) beside the project's (11×11 Gaussian), and the same zoomed crop of every job:",
            "",
            f"![one zoomed crop per job]({crops_figure.name})",
            "",
        ]
    markdown = "\n".join(lines)
    write_document(markdown, out_dir / "sweep.md", f"Sweep summary: {sweep_dir.name}", html=html)
    print(markdown)
    return {"sweep": str(sweep_dir.resolve()), "jobs": rows, "counts": counts}


def _evaluate_images(jobs: list[Job], keys: list[str], path: Path) -> Path | None:
    """Adds ``test/ssim_skimage`` to each finished job's metrics; draws the crops; ``None`` if no job had a checkpoint."""
    from lightning_modules.report.sweep_images import evaluate_job, plot_job_crops

    crops = []
    for job in jobs:
        if job.status != "ok" or job.folder is None:
            continue
        result = evaluate_job(job.folder)
        if result is None:
            continue
        job.metrics[SKIMAGE_SSIM] = result[SKIMAGE_SSIM]
        label = ", ".join(f"{k}={job.values.get(k, '')}" for k in keys) or f"job {job.number}"
        crops.append(
            (f"{job.number}: {label}\nPSNR {result['test/psnr']:.2f}, SSIM {result['test/ssim']:.3f}", result["crop"])
        )
    return plot_job_crops(crops, path) if crops else None


def _row(job: Job, keys: list[str], metrics: list[str]) -> dict[str, Any]:
    row = {"job": job.number, **{k: job.values.get(k, "") for k in keys}, "status": job.status}
    row.update({m: job.metrics.get(m, "") for m in [*metrics, "epochs"]})
    return {**row, "source": job.source, "detail": job.detail}


def _fmt(metric: str, value: Any) -> str:
    if value == "":
        return "–"
    return f"{value:.3e}" if metric.endswith("mse") else f"{value:.4f}" if "ssim" in metric else f"{value:.2f}"


def _numeric(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def plot_sweep(jobs: list[Job], keys: list[str], path: Path) -> Path:
    """Test PSNR of every job: against a numeric swept key (dose, lr, ...) if there is one, else bars.

    Failed and unstarted jobs are drawn as red crosses on the axis with their label, never left out.
    """
    metric = "test/psnr" if any("test/psnr" in j.metrics for j in jobs) else "val/psnr_best"
    numeric = [k for k in keys if _numeric([j.values.get(k, "") for j in jobs]) is not None]
    x_key = next((k for k in ("data.dose", "optim.lr") if k in numeric), numeric[0] if numeric else None)
    fig = Figure(figsize=(9, 5.2), layout="constrained")
    ax = fig.subplots()
    done = [j for j in jobs if metric in j.metrics]
    missing = [j for j in jobs if metric not in j.metrics]
    red_label = {"textcoords": "offset points", "va": "center", "color": "tab:red"}
    if x_key is not None:
        others = [k for k in keys if k != x_key]
        series: dict[str, list[Job]] = {}
        for job in done:
            series.setdefault(", ".join(f"{k}={job.values.get(k, '')}" for k in others) or "model", []).append(job)
        for label, members in series.items():
            members.sort(key=lambda j: float(j.values[x_key]))
            xs_series = [float(j.values[x_key]) for j in members]
            ax.plot(xs_series, [j.metrics[metric] for j in members], marker="o", label=label)
        noisy = [(float(j.values[x_key]), j.metrics["test/psnr_noisy"]) for j in done if "test/psnr_noisy" in j.metrics]
        if metric == "test/psnr" and noisy:
            ax.plot(*zip(*sorted(noisy)), linestyle="--", color="0.5", marker=".", label="noisy input")
        xs = [float(j.values[x_key]) for j in jobs if x_key in j.values]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        if xs:
            ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
            ax.minorticks_off()
        ax.set_xlabel(x_key)
        ax.set_ylabel(HEADINGS[metric] + " (dB)")
        shown = [j.metrics[metric] for j in done] + [value for _, value in noisy]
        low, high = (min(shown), max(shown)) if shown else (0.0, 1.0)
        span = max(high - low, 1.0)
        floor = low - 0.12 * span  # failed jobs sit below every measured value
        if missing:
            ax.set_ylim(floor - 0.1 * span, high + 0.08 * span)
            ax.plot([], [], marker="X", color="tab:red", linestyle="none", label="failed / interrupted / not started")
        for job in missing:
            x = float(job.values.get(x_key, xs[0] if xs else 0.0))
            ax.plot([x], [floor], marker="X", markersize=12, color="tab:red", linestyle="none")
            ax.annotate(
                f"job {job.number}\n{job.status}", (x, floor), xytext=(8, 0), ha="left", fontsize=8, **red_label
            )
        ax.legend(fontsize=8)
    else:
        labels = [f"{j.number}: " + ", ".join(f"{k}={j.values.get(k, '')}" for k in keys) for j in jobs]
        heights = [j.metrics.get(metric, 0.0) for j in jobs]
        bars = ax.barh(
            range(len(jobs)), heights, color=["tab:blue" if metric in j.metrics else "tab:red" for j in jobs]
        )
        for bar, job in zip(bars, jobs):
            if metric not in job.metrics:
                middle = bar.get_y() + bar.get_height() / 2
                ax.annotate(job.status.upper(), (0, middle), xytext=(4, 0), fontsize=9, fontweight="bold", **red_label)
        if not done:
            ax.set_xlim(0, 1)
        ax.set_yticks(range(len(jobs)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(HEADINGS[metric] + " (dB)")
    ax.grid(True, alpha=0.3)
    ax.set_title(
        f"{HEADINGS[metric]} of each job ({sum(j.status == 'ok' for j in jobs)} ok, "
        f"{sum(j.status != 'ok' for j in jobs)} failed, interrupted or not started)",
        fontsize=10,
    )
    return save_figure(fig, path)
