"""Report figures with matplotlib's object API (no pyplot, no display): dose curves and image panels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from datamodules.io.atomic import atomic_write
from lightning_modules.classical.baselines import LABELS
from lightning_modules.report.markdown import TITLES
from lightning_modules.report.stats import DoseEquivalent

STYLE = {
    "noisy": {"color": "0.45", "marker": "o"},
    "nlm": {"color": "tab:blue", "marker": "s"},
    "bm3d": {"color": "tab:green", "marker": "D"},
    "model": {"color": "tab:red", "marker": "^", "linewidth": 2.2, "markersize": 8},
}
DPI = 110


def save_figure(fig: Figure, path: str | Path, title: str = "", fontsize: float = 11) -> Path:
    """Write ``fig`` as a PNG, with ``title`` above it when given."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))


@dataclass(frozen=True)
class Curve:
    """Means and 95 % CI bounds of one metric of one method at increasing doses."""

    doses: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]


def plot_dose_curves(
    curves: dict[str, dict[str, Curve]],
    reference: dict[str, tuple[list[float], list[float]]],
    equivalents: dict[float, DoseEquivalent],
    path: str | Path,
    title: str = "",
) -> Path:
    """PSNR and SSIM against dose (log axis) for every method, with the noisy reference curve.

    ``curves[metric][method]``; ``reference[metric] = (doses, means)``; ``equivalents[dose]`` draws the
    dose-reduction connector of the model's PSNR at ``dose`` onto the reference curve.
    """
    fig = Figure(figsize=(12.5, 5.0), layout="constrained")
    axes = fig.subplots(1, 2)
    study_doses = sorted({d for by_method in curves.values() for c in by_method.values() for d in c.doses})
    ref_doses = reference["psnr"][0]
    lo, hi = min(study_doses + list(ref_doses)), max(study_doses + list(ref_doses))
    for ax, metric in zip(axes, ("psnr", "ssim")):
        ax.plot(
            *reference[metric], color="0.7", linewidth=1.2, marker=".", zorder=1, label="noisy input, reference curve"
        )
        for method, curve in curves[metric].items():
            style = dict(STYLE.get(method, {"marker": "o"}))
            if method == "noisy":
                style["linestyle"] = "none"  # the reference curve is its line
            err = [np.subtract(curve.mean, curve.low), np.subtract(curve.high, curve.mean)]
            ax.errorbar(
                curve.doses, curve.mean, yerr=err, capsize=3, label=LABELS.get(method, method), zorder=3, **style
            )
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.4, hi * 1.4)
        ax.set_xticks(sorted(set(study_doses) | {d for d in ref_doses if d > max(study_doses)}))
        ax.set_xticklabels([f"{d:g}" for d in ax.get_xticks()])
        ax.minorticks_off()
        ax.set_xlabel("dose (fraction of full dose, log scale)")
        ax.set_ylabel(TITLES[metric])
        ax.grid(True, which="major", alpha=0.3)
    _draw_equivalents(axes[0], curves["psnr"]["model"], equivalents, hi * 1.4)
    axes[0].legend(loc="lower right", fontsize=9)
    axes[0].set_title(
        "PSNR vs dose (error bars: 95 % CI)\ndotted: to the dose where the noisy input has the model's PSNR;"
        " ×k = dose-reduction factor",
        fontsize=9.5,
    )
    axes[1].set_title("SSIM vs dose (error bars: 95 % CI)", fontsize=9.5)
    return save_figure(fig, path, title)


def _draw_equivalents(ax, model: Curve, equivalents: dict[float, DoseEquivalent], right_edge: float) -> None:
    bbox = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
    text = {"textcoords": "offset points", "xytext": (0, -17), "ha": "center", "fontsize": 8, "color": "tab:red"}
    for dose, value in zip(model.doses, model.mean):
        match = equivalents[dose]
        end = min(match.dose, right_edge)
        ax.plot([dose, end], [value, value], linestyle=":", color="tab:red", linewidth=1.2, zorder=2)
        ax.plot([end], [value], marker="|", markersize=10, color="tab:red", zorder=2)
        label = f"×{match.dose / dose:.2g}" if not match.extrapolated else f"{match.relation}×{match.bound / dose:.2g}"
        ax.annotate(label, (dose, value), bbox=bbox, zorder=4, **text)


@dataclass(frozen=True)
class PanelCase:
    """One example image at one condition: its clean image and every method's output, with metrics."""

    label: str  # e.g. "best", "median", "worst"
    name: str
    clean: torch.Tensor  # (1, H, W)
    outputs: dict[str, torch.Tensor]  # method -> (1, H, W)
    metrics: dict[str, dict[str, float]]  # method -> {"psnr", "ssim"}


def _window_means(image: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``image`` over every ``size``×``size`` window inside it, indexed by the window's top-left corner."""
    from scipy.ndimage import uniform_filter

    height, width = image.shape
    local = uniform_filter(image.astype(np.float64), size=size, mode="constant")
    half = size // 2
    return local[half : height - size + half + 1, half : width - size + half + 1]


def crop_box(error: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size``×``size`` window with the largest mean ``error``."""
    means = _window_means(error, min(size, *error.shape))
    top, left = np.unravel_index(int(np.argmax(means)), means.shape)
    return int(top), int(left)


def flat_box(clean: np.ndarray, size: int, min_level: float = 0.2) -> tuple[int, int]:
    """Top-left corner of the flattest ``size``×``size`` window of ``clean`` (smallest local standard
    deviation) among windows whose mean is at least ``min_level`` (inside the body, not the dark
    background); the whole image's flattest window when none is that bright."""
    size = min(size, *clean.shape)
    image = clean.astype(np.float64)
    mean = _window_means(image, size)
    spread = _window_means(image**2, size) - mean**2
    bright = mean >= min_level
    candidates = np.where(bright, spread, np.inf) if bright.any() else spread
    top, left = np.unravel_index(int(np.argmin(candidates)), candidates.shape)
    return int(top), int(left)


def plot_flat_crops(case: PanelCase, methods: Sequence[str], path: str | Path, size: int = 48, title: str = "") -> Path:
    """One image's flattest body region (:func:`flat_box`), enlarged without smoothing, for every method and
    the clean image: where a pixel-scale texture (dithering) or leftover noise shows first."""
    clean = case.clean[0].numpy()
    top, left = flat_box(clean, size)
    columns = [*methods, "clean"]
    fig = Figure(figsize=(2.4 * len(columns), 2.9), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    window = (slice(top, top + size), slice(left, left + size))
    reference = clean[window]
    low, high = float(np.percentile(reference, 1)) - 0.05, float(np.percentile(reference, 99)) + 0.05
    for ax, column in zip(axes, columns):
        image = clean if column == "clean" else case.outputs[column][0].numpy()
        crop = image[window]
        heading = LABELS.get(column, column)
        if column != "clean":
            heading += f"\nstd of error {float(np.std(crop - reference)):.4f}"
        ax.imshow(crop, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(heading, fontsize=8.5)
        ax.set(xticks=[], yticks=[])
    axes[0].set_ylabel(f"{case.name}\n{size}×{size} at ({left}, {top})", fontsize=8)
    return save_figure(fig, path, title, fontsize=10)


def plot_panels(cases: Sequence[PanelCase], methods: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Rows of ``noisy | baselines | model | clean | |model − clean|`` with a zoomed crop under each row.

    All intensity images share the [0, 1] grey scale; the difference maps share one colour scale.
    The crop is the window with the largest mean absolute model error (marked by a yellow box).
    """
    columns = [*methods, "clean", "error"]
    diffs = [np.abs(c.outputs["model"][0].numpy() - c.clean[0].numpy()) for c in cases]
    vmax = max(float(np.percentile(d, 99.5)) for d in diffs) or 1e-3
    fig = Figure(figsize=(2.2 * len(columns) + 0.8, 4.6 * len(cases) + 0.4), layout="constrained")
    axes = fig.subplots(2 * len(cases), len(columns), squeeze=False)
    for row, (case, diff) in enumerate(zip(cases, diffs)):
        height, width = diff.shape
        size = max(16, min(height, width) // 4)
        top, left = crop_box(diff, size)
        for col, column in enumerate(columns):
            full, zoom = axes[2 * row, col], axes[2 * row + 1, col]
            if column == "error":
                image, kwargs, heading = diff, {"cmap": "magma", "vmin": 0.0, "vmax": vmax}, "|model − clean|"
            else:
                source = case.clean if column == "clean" else case.outputs[column]
                image, kwargs = source[0].numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
                heading = LABELS.get(column, column)
                if column in case.metrics:
                    heading += f"\n{case.metrics[column]['psnr']:.2f} dB, SSIM {case.metrics[column]['ssim']:.3f}"
            shown = full.imshow(image, interpolation="nearest", **kwargs)  # the last: the error map, for the colour bar
            zoom.imshow(image[top : top + size, left : left + size], interpolation="nearest", **kwargs)
            full.add_patch(
                Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor="yellow", linewidth=1.2)
            )
            full.set_title(heading, fontsize=8.5)
            full.set(xticks=[], yticks=[])
            zoom.set(xticks=[], yticks=[])
        axes[2 * row, 0].set_ylabel(f"{case.label}\n{case.name}", fontsize=9)
        axes[2 * row + 1, 0].set_ylabel(f"zoom {size}×{size}\nat ({left}, {top})", fontsize=8)
    fig.colorbar(shown, ax=axes[:, -1], shrink=min(0.6, 1.5 / len(cases)), label="absolute error of the model")
    return save_figure(fig, path, title)
