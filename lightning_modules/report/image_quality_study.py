"""The report's image-quality section: phantoms and low-contrast signals simulated at each dose with
the report's noise model, every method run on them, and the measures of
:mod:`lightning_modules.report.image_quality` gathered into one result.

- **NPS**: flat fields of one intensity, simulated at each dose; half-overlapping ROIs of each
  method's output.
- **MTF/TTF**: a slanted edge (a Gaussian-blurred step, the "detector" blur known) at a high and a low
  step, simulated ``realisations`` times per dose; the MTF of each method's mean output.
- **Detectability**: discs inserted into real clean radiographs of the split on a grid of ROIs; each
  image is simulated once without signals and once per (size, contrast) with a disc in every ROI, with
  independent noise; a CHO with Laguerre–Gauss channels, two-fold cross-validated; AUC and d′ with
  bootstrap intervals; the dose at which each method's d′ equals the noisy input's at full dose.

Every noisy image is drawn from its own seed (``settings.seed`` and the image's role), so the same
settings give the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lightning_modules.report import image_quality as iq
from lightning_modules.report.stats import equivalent_dose

Method = Callable[[np.ndarray, float], np.ndarray]  # (B, H, W) noisy batch, dose -> (B, H, W) output
NOISY = "noisy"


@dataclass(frozen=True)
class Settings:
    """What the section measures (``image_quality:`` in ``conf/report.yaml``)."""

    doses: tuple[float, ...]
    seed: int = 2024
    # NPS: `nps_images` flat fields of `nps_image` px at intensity `nps_level`, ROIs of `nps_roi` px
    nps_level: float = 0.5
    nps_image: int = 160
    nps_images: int = 2
    nps_roi: int = 64
    # MTF: a (rows, cols) `edge_image` slanted edge at `edge_angle` degrees, blurred by `edge_blur` px, from
    # `edge_level` up by each of `edge_steps`, `edge_realisations` noise draws each
    edge_image: tuple[int, int] = (256, 64)
    edge_angle: float = 3.0
    edge_blur: float = 0.8
    edge_level: float = 0.4
    edge_steps: tuple[float, ...] = (0.2, 0.04)
    edge_realisations: int = 4
    # Detectability: `images` backgrounds, ROIs of `roi_size` px on a grid, discs of `sizes` px diameter at
    # `contrasts` (fraction of the ROI's mean intensity), `channels` LG channels of width
    # `channel_width` × diameter, `bootstrap` resamples
    images: int = 2
    roi_size: int = 32
    sizes: tuple[float, ...] = (4.0, 8.0)
    contrasts: tuple[float, ...] = (0.02,)
    known_background: bool = True  # subtract the clean radiograph from every ROI (BKE task)
    roi_levels: tuple[float, float] = (0.1, 0.85)
    channels: int = 6
    channel_width: float = 1.5
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not self.doses or any(not d > 0 for d in self.doses):
            raise ValueError(f"image_quality.doses must be doses > 0, got {list(self.doses)}")
        if self.nps_roi > self.nps_image or self.roi_size < 8 or self.images < 1:
            raise ValueError("image_quality: nps_roi must fit in nps_image, roi_size >= 8 and images >= 1")
        if self.edge_realisations < 1 or self.nps_images < 1 or self.bootstrap < 10:
            raise ValueError("image_quality: edge_realisations, nps_images >= 1 and bootstrap >= 10")
        if any(s <= 0 or s >= self.roi_size for s in self.sizes):
            raise ValueError(f"image_quality.sizes must be in (0, roi_size={self.roi_size}), got {list(self.sizes)}")

    @property
    def all_doses(self) -> list[float]:
        """The doses measured, highest first; full dose (1) always, as the detectability reference."""
        return sorted({float(d) for d in self.doses} | {1.0}, reverse=True)

    @property
    def conditions(self) -> list[tuple[float, float]]:
        """Every (disc diameter, contrast) of the detection task."""
        return [(float(s), float(c)) for s in self.sizes for c in self.contrasts]


def seed_of(base: int, *parts: int) -> int:
    """A seed for one simulated image, from the settings' seed and the image's role and index."""
    return int(np.random.SeedSequence([base, *parts]).generate_state(1)[0])


@dataclass
class Timer:
    """Seconds spent per method and per part."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds


def run_methods(
    methods: dict[str, Method], noise: Any, cleans: Sequence[np.ndarray], dose: float, seed: tuple, timer: Timer
) -> dict[str, np.ndarray]:
    """Every method's output (B, H, W) for low-dose images of ``cleans`` (H, W each) at ``dose``, simulated
    with the noise model, image ``j`` from the seed ``seed_of(*seed, j)``."""
    images = []
    for j, clean in enumerate(cleans):
        image = torch.from_numpy(np.asarray(clean, dtype=np.float32))[None]
        images.append(noise.simulate(image, dose, torch.Generator().manual_seed(seed_of(*seed, j)))[0].numpy())
    noisy = np.stack(images).astype(np.float64)
    outputs = {}
    for name, method in methods.items():
        start = time.perf_counter()
        outputs[name] = np.asarray(method(noisy, dose), dtype=np.float64)
        timer.add(name, time.perf_counter() - start)
    return outputs


# --- the three measurements ----------------------------------------------------------------------------


def measure_nps(settings: Settings, noise: Any, methods: dict[str, Method], timer: Timer) -> dict:
    """``{dose: {method: NoiseSpectrum}}`` from simulated flat fields."""
    flat = np.full((settings.nps_image, settings.nps_image), settings.nps_level)
    margin = (settings.nps_image - settings.nps_roi) // 8
    result: dict[float, dict[str, iq.NoiseSpectrum]] = {}
    for k, dose in enumerate(settings.all_doses):
        outputs = run_methods(methods, noise, [flat] * settings.nps_images, dose, (settings.seed, 1, k), timer)
        result[dose] = {
            name: iq.noise_spectrum(np.concatenate([iq.tile_rois(image, settings.nps_roi, margin) for image in out]))
            for name, out in outputs.items()
        }
    return result


@dataclass(frozen=True)
class EdgeResult:
    frequencies: np.ndarray
    mtf: np.ndarray
    mtf50: float
    mtf10: float


def edge_result(image: np.ndarray, distance: np.ndarray) -> EdgeResult:
    """The MTF of one edge image and its MTF50 / MTF10; all ``nan`` when the output has lost the edge."""
    try:
        frequencies, mtf = iq.edge_mtf(image, distance)
    except ValueError:  # a flat output: no edge left to measure
        frequencies = np.linspace(0.0, 0.5, 65)
        return EdgeResult(frequencies, np.full_like(frequencies, np.nan), math.nan, math.nan)
    return EdgeResult(frequencies, mtf, iq.mtf_crossing(frequencies, mtf, 0.5), iq.mtf_crossing(frequencies, mtf, 0.1))


def measure_mtf(settings: Settings, noise: Any, methods: dict[str, Method], timer: Timer) -> dict:
    """``{step: {"phantom": EdgeResult, dose: {method: EdgeResult}}}``: the noise-free phantom's MTF
    and each method's (of its output averaged over the noise realisations) at each dose."""
    shape = (int(settings.edge_image[0]), int(settings.edge_image[1]))
    distance = iq.edge_distance(shape, settings.edge_angle)
    result: dict[float, dict] = {}
    for s, step in enumerate(settings.edge_steps):
        clean = iq.gaussian_edge(distance, settings.edge_level, settings.edge_level + step, settings.edge_blur)
        by_dose: dict[Any, Any] = {"phantom": edge_result(clean, distance)}
        for k, dose in enumerate(settings.all_doses):
            cleans = [clean] * settings.edge_realisations
            outputs = run_methods(methods, noise, cleans, dose, (settings.seed, 2, s, k), timer)
            by_dose[dose] = {name: edge_result(out.mean(axis=0), distance) for name, out in outputs.items()}
        result[float(step)] = by_dose
    return result


@dataclass(frozen=True)
class Background:
    """One clean radiograph and the top-left corners of its ROIs."""

    name: str
    clean: np.ndarray
    corners: list[tuple[int, int]]


def roi_corners(clean: np.ndarray, size: int, levels: tuple[float, float]) -> list[tuple[int, int]]:
    """Top-left corners of a grid of non-overlapping ``size`` ROIs whose clean mean lies in ``levels``
    (inside the body, away from the clipped extremes)."""
    rows, cols = clean.shape
    top0, left0 = (rows % size) // 2 or size // 4, (cols % size) // 2 or size // 4
    corners = []
    for top in range(top0, rows - size + 1, size):
        for left in range(left0, cols - size + 1, size):
            if levels[0] <= float(clean[top : top + size, left : left + size].mean()) <= levels[1]:
                corners.append((top, left))
    return corners


def with_signals(background: Background, size: int, diameter: float, contrast: float) -> np.ndarray:
    """The background with a disc of ``diameter`` px centred in every ROI, of ``contrast`` × the ROI's
    mean clean intensity."""
    disc = iq.disc_profile(size, diameter)
    image = background.clean.astype(np.float64).copy()
    for top, left in background.corners:
        window = (slice(top, top + size), slice(left, left + size))
        image[window] += contrast * float(background.clean[window].mean()) * disc
    return image


def cut_rois(image: np.ndarray, corners: Sequence[tuple[int, int]], size: int) -> np.ndarray:
    return np.stack([image[t : t + size, s : s + size] for t, s in corners])


def collect_rois(
    settings: Settings, noise: Any, methods: dict[str, Method], backgrounds: Sequence[Background], timer: Timer
) -> dict:
    """``{dose: {method: {"absent": rois, (size, contrast): rois}}}``: matched ROIs of every method, minus
    the clean background's ROIs when ``settings.known_background``."""
    size, conditions = settings.roi_size, settings.conditions
    rois: dict[float, dict[str, dict[Any, list[np.ndarray]]]] = {}
    for k, dose in enumerate(settings.all_doses):
        by_method: dict[str, dict[Any, list[np.ndarray]]] = {name: {} for name in methods}
        for b, background in enumerate(backgrounds):
            cleans = [background.clean.astype(np.float64)]
            cleans += [with_signals(background, size, diameter, contrast) for diameter, contrast in conditions]
            outputs = run_methods(methods, noise, cleans, dose, (settings.seed, 3, b, k), timer)
            known = cut_rois(background.clean, background.corners, size) if settings.known_background else 0.0
            for name, out in outputs.items():
                for key, image in zip(["absent", *conditions], out):
                    by_method[name].setdefault(key, []).append(cut_rois(image, background.corners, size) - known)
        rois[dose] = {name: {key: np.concatenate(v) for key, v in parts.items()} for name, parts in by_method.items()}
    return rois


@dataclass(frozen=True)
class Detection:
    """CHO test ratings of one method, dose and condition, with AUC and d′ and their intervals."""

    present: np.ndarray
    absent: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    d_prime: float
    d_prime_ci: tuple[float, float]


def detect(present: np.ndarray, absent: np.ndarray, channels: np.ndarray, folds: list, settings: Settings) -> Detection:
    """The CHO's ratings, AUC and d′; every call draws the same bootstrap resamples."""
    t_p, t_a = iq.cho_ratings(present, absent, channels, folds)
    rng = np.random.default_rng(seed_of(settings.seed, 5))
    aucs = iq.bootstrap_pairs(t_p, t_a, iq.auc, rng, settings.bootstrap)
    dps = iq.bootstrap_pairs(t_p, t_a, iq.d_prime, rng, settings.bootstrap)
    return Detection(
        t_p, t_a, iq.auc(t_p, t_a), iq.percentile_interval(aucs), iq.d_prime(t_p, t_a), iq.percentile_interval(dps)
    )


def measure_detectability(settings: Settings, rois: dict) -> dict:
    """``{(size, contrast): {dose: {method: Detection}}}``; the same folds and bootstrap draws for all."""
    count = len(next(iter(next(iter(rois.values())).values()))["absent"])
    if count < 8:
        raise ValueError(f"image_quality: only {count} ROIs inside the body; use more images or a smaller roi_size")
    folds = iq.two_folds(count, np.random.default_rng(seed_of(settings.seed, 4)))
    result: dict[tuple[float, float], dict[float, dict[str, Detection]]] = {}
    for diameter, contrast in settings.conditions:
        channels = iq.laguerre_gauss_channels(settings.roi_size, settings.channel_width * diameter, settings.channels)
        result[(diameter, contrast)] = {
            dose: {
                name: detect(parts[(diameter, contrast)], parts["absent"], channels, folds, settings)
                for name, parts in by_method.items()
            }
            for dose, by_method in rois.items()
        }
    return result


# --- dose at equal detectability -----------------------------------------------------------------------


@dataclass(frozen=True)
class DoseAtEqual:
    """The dose at which a method reaches the noisy input's full-dose value, with a bootstrap interval
    (``nan`` without one); ``relation`` ``<``/``>`` when it lies below / above the measured doses."""

    dose: float
    relation: str
    low: float
    high: float

    def text(self) -> str:
        interval = f" [{self.low:.3g}, {self.high:.3g}]" if math.isfinite(self.low) else ""
        if self.relation == "=":
            return f"{self.dose:.3g}{interval}"
        return f"{self.relation} {self.dose:.3g}{interval}"


def dose_reaching(doses: Sequence[float], values: Sequence[float], target: float) -> tuple[float, str]:
    """The lowest dose at which ``values(doses)`` reaches ``target`` (log-dose interpolation of the
    running maximum, :func:`~lightning_modules.report.stats.equivalent_dose`); the dose grid's end and
    ``<`` or ``>`` when it is reached below the lowest dose or not even at the highest."""
    if len(doses) == 1:  # one dose: reached there or not
        return float(doses[0]), "=" if values[0] >= target else ">"
    try:
        match = equivalent_dose(doses, values, target)
    except OverflowError:  # far beyond the grid along a nearly flat end segment
        return (max(doses), ">") if target > max(values) else (min(doses), "<")
    if not match.extrapolated:
        return match.dose, "="
    return float(match.bound), match.relation


def dose_at_equal_detectability(
    by_dose: dict[float, dict[str, Detection]], method: str, settings: Settings
) -> DoseAtEqual:
    """The dose where ``method``'s d′ equals the noisy input's d′ at dose 1; the interval resamples the
    ROI pairs (the same draw at every dose and for both methods) and repeats the whole computation."""
    doses = sorted(by_dose)
    reference = by_dose[1.0][NOISY]
    dose, relation = dose_reaching(doses, [by_dose[d][method].d_prime for d in doses], reference.d_prime)
    count = len(reference.present)
    draws = np.random.default_rng(seed_of(settings.seed, 6)).integers(0, count, size=(settings.bootstrap, count))
    logs = []
    for draw in draws:
        target = iq.d_prime(reference.present[draw], reference.absent[draw])
        curve = [iq.d_prime(by_dose[d][method].present[draw], by_dose[d][method].absent[draw]) for d in doses]
        value, _ = dose_reaching(doses, curve, target)
        logs.append(math.log(value))
    low, high = iq.percentile_interval(np.array(logs))
    return DoseAtEqual(dose, relation, math.exp(low), math.exp(high))


def dose_at_equal_psnr(metrics: dict[str, dict[str, dict]], method: str) -> DoseAtEqual | None:
    """From the report's PSNR table: the dose at which ``method``'s mean PSNR equals the noisy input's at
    dose 1 (``None`` without simulated doses including 1)."""
    keys = [k for k in metrics if k != "paired"]
    if "1" not in keys or len(keys) < 2 or any(method not in metrics[k] for k in keys):
        return None
    doses = [float(k) for k in keys]
    values = [metrics[k][method]["psnr"]["mean"] for k in keys]
    return DoseAtEqual(*dose_reaching(doses, values, metrics["1"][NOISY]["psnr"]["mean"]), math.nan, math.nan)


# --- the whole section -----------------------------------------------------------------------------------


@dataclass
class ImageQuality:
    settings: Settings
    methods: list[str]
    nps: dict
    mtf: dict
    detection: dict
    equal_detectability: dict  # {(size, contrast): {method: DoseAtEqual}}
    rois: int
    backgrounds: list[str]
    seconds: dict[str, float]


def measure_image_quality(
    settings: Settings, noise: Any, methods: dict[str, Method], backgrounds: Sequence[Background]
) -> ImageQuality:
    """Every measure of the section for ``methods`` (the first must be the noisy input, ``"noisy"``)."""
    if next(iter(methods)) != NOISY:
        raise ValueError("measure_image_quality: the first method must be the noisy input ('noisy')")
    timer = Timer()
    start = time.perf_counter()
    nps = measure_nps(settings, noise, methods, timer)
    timer.add("part: nps", time.perf_counter() - start)
    start = time.perf_counter()
    mtf = measure_mtf(settings, noise, methods, timer)
    timer.add("part: mtf", time.perf_counter() - start)
    start = time.perf_counter()
    rois = collect_rois(settings, noise, methods, backgrounds, timer)
    detection = measure_detectability(settings, rois)
    equal = {
        condition: {name: dose_at_equal_detectability(by_dose, name, settings) for name in methods}
        for condition, by_dose in detection.items()
    }
    timer.add("part: detectability", time.perf_counter() - start)
    count = sum(len(b.corners) for b in backgrounds)
    return ImageQuality(
        settings, list(methods), nps, mtf, detection, equal, count, [b.name for b in backgrounds], timer.seconds
    )
