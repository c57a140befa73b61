"""The image-quality section's figures: radial NPS, MTF/TTF and d′ against dose (matplotlib object API)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lightning_modules.classical.baselines import LABELS
from lightning_modules.report.figures import STYLE, save_figure
from lightning_modules.report.image_quality_study import NOISY, ImageQuality


def _style(method: str) -> dict:
    style = dict(STYLE.get(method, {"marker": "o"}))
    style.pop("markersize", None)
    return style


def _dose_axes(count: int, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(4.3 * columns, height * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def plot_nps(result: ImageQuality, path: str | Path) -> Path:
    """One panel per dose: the radial NPS of every method (log scale), legend with the noise std."""
    doses = list(result.nps)
    fig, axes = _dose_axes(len(doses))
    for ax, dose in zip(axes, doses):
        for method, spectrum in result.nps[dose].items():
            label = f"{LABELS.get(method, method)} (σ {spectrum.std:.3g})"
            ax.plot(
                spectrum.frequencies, np.maximum(spectrum.radial, 1e-12), label=label, **_style(method), markevery=4
            )
        ax.set_yscale("log")
        ax.set_title(f"dose {dose:g}", fontsize=10)
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("NPS (intensity² · pixel²)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5)
    title = (
        f"Noise power spectrum of flat fields at intensity {result.settings.nps_level:g} (radial average); "
        "σ = noise std (the NPS integral)"
    )
    return save_figure(fig, path, title, fontsize=10.5)


def plot_mtf(result: ImageQuality, path: str | Path) -> Path:
    """Rows: edge steps (high, low contrast); columns: doses; every method's MTF and the phantom's."""
    steps = list(result.mtf)
    doses = [d for d in result.mtf[steps[0]] if d != "phantom"]
    fig = Figure(figsize=(3.3 * len(doses), 3.0 * len(steps) + 0.4), layout="constrained")
    axes = fig.subplots(len(steps), len(doses), squeeze=False)
    for row, step in enumerate(steps):
        phantom = result.mtf[step]["phantom"]
        for col, dose in enumerate(doses):
            ax = axes[row, col]
            ax.plot(phantom.frequencies, phantom.mtf, color="k", linestyle=":", label="phantom (no noise)")
            for method, edge in result.mtf[step][dose].items():
                ax.plot(edge.frequencies, edge.mtf, label=LABELS.get(method, method), **_style(method), markevery=16)
            ax.axhline(0.5, color="0.7", linewidth=0.8)
            ax.set_ylim(-0.05, 1.3)
            ax.set_title(f"step {step:g}, dose {dose:g}", fontsize=9.5)
            ax.set_xlabel("cycles/pixel")
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel("MTF / TTF")
    axes[0, 0].legend(fontsize=7.5)
    title = (
        f"Slanted-edge MTF (TTF for the denoisers): edge at {result.settings.edge_angle:g}°, phantom blur "
        f"σ = {result.settings.edge_blur:g} px, mean of {result.settings.edge_realisations} noise draws"
    )
    return save_figure(fig, path, title, fontsize=10.5)


def plot_detectability(result: ImageQuality, path: str | Path) -> Path:
    """One panel per (size, contrast): CHO d′ against dose with 95 % intervals; the noisy input's d′ at
    full dose dashed (the level the dose at equal detectability is read at)."""
    conditions = list(result.detection)
    fig, axes = _dose_axes(len(conditions), height=3.8)
    for ax, condition in zip(axes, conditions):
        by_dose = result.detection[condition]
        doses = sorted(by_dose)
        for method in result.methods:
            values = [by_dose[d][method] for d in doses]
            mean = [v.d_prime for v in values]
            err = [
                [m - v.d_prime_ci[0] for m, v in zip(mean, values)],
                [v.d_prime_ci[1] - m for m, v in zip(mean, values)],
            ]
            ax.errorbar(doses, mean, yerr=err, capsize=3, label=LABELS.get(method, method), **_style(method))
        ax.axhline(
            by_dose[1.0][NOISY].d_prime, color="0.45", linestyle="--", linewidth=1, label="noisy input at dose 1"
        )
        ax.set_xscale("log")
        ax.set_xticks(doses)
        ax.set_xticklabels([f"{d:g}" for d in doses])
        ax.minorticks_off()
        size, contrast = condition
        ax.set_title(f"disc {size:g} px, contrast {100 * contrast:g} %", fontsize=10)
        ax.set_xlabel("dose (log scale)")
        ax.set_ylabel("CHO d′")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7.5)
    title = (
        f"Low-contrast detectability: channelized Hotelling observer ({result.settings.channels} Laguerre–Gauss "
        f"channels), {result.rois} ROI pairs from {len(result.backgrounds)} radiographs; bars: bootstrap 95 %"
    )
    return save_figure(fig, path, title, fontsize=10.5)
