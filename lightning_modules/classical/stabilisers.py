"""Transforms that turn a low-dose image into "signal + white Gaussian noise of known σ" and back.

Classical denoisers (non-local means, BM3D) assume additive white Gaussian noise of a known level.
Each low-dose model of the project gets the transform that makes this true (or nearly so):

- :class:`CountsAnscombe` for :class:`~datamodules.noise.PhysicalNoiseModel`: back to detector counts,
  Generalised Anscombe Transform (σ = 1), and back through the unbiased inverse.
- :class:`ScaledCountsAnscombe` for the display-domain :class:`~datamodules.detector_noise.PoissonGaussianNoiseModel`.
- :class:`AffineCorrection` for the affine model, the Gaussian model and real pairs: undo the
  intensity change ``y = g·x + b + n`` so the result is ``x + n/g``.

``stabiliser_for(noise, dose)`` picks the transform of a noise-model object.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from datamodules.detector_noise import PoissonGaussianNoiseModel
from datamodules.io.images import read_image
from datamodules.noise import AffineGaussianNoiseModel, GaussianNoiseModel, PhysicalNoiseModel
from lightning_modules.classical.anscombe import gat_forward, gat_inverse_unbiased


class Stabiliser(Protocol):
    """``forward(noisy)`` → image with additive white Gaussian noise of std ``sigma``; ``inverse`` → [0, 1]."""

    sigma: float

    def forward(self, noisy: np.ndarray) -> np.ndarray: ...

    def inverse(self, denoised: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class CountsAnscombe:
    """Display intensity → counts ``N = d·I0·exp(−p(x))`` → GAT; back with the unbiased inverse.

    The noisy display image was clipped to [0, 1] (and counts floored at ``eps``) by the simulation,
    so recovered counts of the very densest and thinnest pixels are clipped too: the GAT is then
    only approximately variance-stabilising there.
    """

    model: PhysicalNoiseModel
    dose: float
    sigma: float = 1.0

    def forward(self, noisy: np.ndarray) -> np.ndarray:
        p = self.model.p_min + (self.model.p_max - self.model.p_min) * np.asarray(noisy, dtype=np.float64)
        counts = self.dose * self.model.I0 * np.exp(-p)
        return gat_forward(counts, self.model.sigma_e)

    def inverse(self, denoised: np.ndarray) -> np.ndarray:
        counts = np.maximum(gat_inverse_unbiased(denoised, self.model.sigma_e), self.model.eps)
        p = -np.log(counts / (self.dose * self.model.I0))
        x = (p - self.model.p_min) / (self.model.p_max - self.model.p_min)
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return (
            f"counts N = d·I0·exp(−p(x)) (I0={self.model.I0:g}, d the dose), Generalised Anscombe "
            f"Transform with σe={self.model.sigma_e:g} counts (noise std 1), closed-form unbiased inverse "
            "(Mäkitalo & Foi 2013), counts floored at eps, back to display intensity, clipped to [0, 1]"
        )


@dataclass(frozen=True)
class AffineCorrection:
    """``y = gain·x + offset + N(0, noise²)`` → ``(y − offset)/gain`` with noise std ``noise/gain``."""

    gain: float
    offset: float
    noise: float

    @property
    def sigma(self) -> float:
        return self.noise / self.gain

    def forward(self, noisy: np.ndarray) -> np.ndarray:
        return (np.asarray(noisy, dtype=np.float64) - self.offset) / self.gain

    def inverse(self, denoised: np.ndarray) -> np.ndarray:
        return np.clip(denoised, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return (
            f"intensity correction (y − {self.offset:.4f}) / {self.gain:.4f}, "
            f"noise std {self.sigma:.4f} after correction, clipped to [0, 1]"
        )


@dataclass(frozen=True)
class ScaledCountsAnscombe:
    """Display-domain Poisson–Gaussian ``y = Poisson(s·x)/s + N(0, σ²)`` → counts ``s·y`` → GAT with
    electronic noise ``s·σ`` counts; back with the unbiased inverse and ``/ s``.

    The protocol draws ``s`` (η times the dose) and ``σ`` per image from ranges a denoiser is not told;
    the baselines get the ranges' midpoints.
    """

    scale: float
    noise: float
    sigma: float = 1.0

    def forward(self, noisy: np.ndarray) -> np.ndarray:
        return gat_forward(self.scale * np.asarray(noisy, dtype=np.float64), self.scale * self.noise)

    def inverse(self, denoised: np.ndarray) -> np.ndarray:
        counts = gat_inverse_unbiased(denoised, self.scale * self.noise)
        return np.clip(counts / self.scale, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return (
            f"counts s·y (s = η·dose = {self.scale:g} photons at intensity 1), Generalised Anscombe Transform "
            f"with σ = {self.noise:.4f} (the midpoints of the protocol's ranges), unbiased inverse, clipped to [0, 1]"
        )


def _poisson_gaussian(model: PoissonGaussianNoiseModel, dose: float) -> Stabiliser:
    return ScaledCountsAnscombe(sum(model.eta) / 2 * dose, sum(model.sigma) / 2)


def _physical(model: PhysicalNoiseModel, dose: float) -> Stabiliser:
    return CountsAnscombe(model, dose)


def _affine(model: AffineGaussianNoiseModel, dose: float) -> Stabiliser:
    return AffineCorrection(model.gain, model.offset, model.sigma / math.sqrt(dose))


def _gaussian(model: GaussianNoiseModel, dose: float) -> Stabiliser:
    return AffineCorrection(1.0, 0.0, model.sigma / math.sqrt(dose))


STABILISERS: dict[type, Callable[..., Stabiliser]] = {
    PhysicalNoiseModel: _physical,
    AffineGaussianNoiseModel: _affine,
    GaussianNoiseModel: _gaussian,
    PoissonGaussianNoiseModel: _poisson_gaussian,
}


def stabiliser_for(noise: object, dose: float) -> Stabiliser:
    """The transform that makes ``noise``'s output at ``dose`` additive white Gaussian."""
    for kind, build in STABILISERS.items():
        if isinstance(noise, kind):
            return build(noise, dose)
    known = ", ".join(k.__name__ for k in STABILISERS)
    raise TypeError(f"no classical-baseline transform for noise model {noise!r} (known: {known}); use baselines=[]")


def fit_affine_degradation(pairs: Sequence[tuple[Path, Path]], max_pairs: int = 200) -> AffineCorrection:
    """Least-squares fit of ``low = gain·high + offset`` and the residual std on real (low, high) pairs.

    The forward direction is fitted (noise sits in ``low``, so regressing ``low`` on ``high`` is not
    diluted by it). Pixels where ``low`` is clipped at 0 or 1 are left out. At most ``max_pairs``
    pairs, evenly spaced, are read.
    """
    if not pairs:
        raise ValueError("fit_affine_degradation: no (low, high) pairs to fit the intensity correction on")
    chosen = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, min(max_pairs, len(pairs))).round()]
    sums = np.zeros(6)  # Σx, Σy, Σxx, Σxy, Σyy, n
    for low_path, high_path in chosen:
        low, high = read_image(low_path)[0].astype(np.float64), read_image(high_path)[0].astype(np.float64)
        if low.shape != high.shape:
            raise ValueError(f"{low_path}: size {low.shape} differs from {high_path} {high.shape}")
        keep = (low > 0.0) & (low < 1.0)
        x, y = high[keep], low[keep]
        sums += (x.sum(), y.sum(), (x * x).sum(), (x * y).sum(), (y * y).sum(), x.size)
    sx, sy, sxx, sxy, syy, n = sums
    gain = (n * sxy - sx * sy) / (n * sxx - sx**2)
    offset = (sy - gain * sx) / n
    residual = syy - 2 * gain * sxy - 2 * offset * sy + gain**2 * sxx + 2 * gain * offset * sx + n * offset**2
    return AffineCorrection(float(gain), float(offset), float(math.sqrt(max(residual, 0.0) / (n - 2))))
