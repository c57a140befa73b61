"""The noise level R2R recorrupts with (``training.sigma``): given, estimated from the images, or the
per-pixel level of the data's own noise model.

``resolve_noise_level`` turns the setting into plain values (stored in the checkpoint);
``NoiseLevel`` turns those into σ for a batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.noise import AffineGaussianNoiseModel, GaussianNoiseModel, PhysicalNoiseModel

SIGMA_MODES = ("auto", "estimate", "physical")
MIN_SIGMA = 1.0 / 255  # below one 8-bit grey level: no measurable noise
ESTIMATE_IMAGES = 32
LOCAL_MEAN_SIZE = 5  # window of the local mean the physical noise level is evaluated at


class NoiseLevelError(ValueError):
    """The noise level R2R needs is not known and cannot be estimated; the message names the key."""


def estimate_sigma(images: Sequence[np.ndarray | torch.Tensor]) -> float:
    """Median over ``images`` of scikit-image's wavelet (MAD of the finest diagonal details) estimate
    of white Gaussian noise std, each image (H, W) or (1, H, W) in [0, 1]."""
    from skimage.restoration import estimate_sigma as wavelet_sigma

    values = [float(wavelet_sigma(np.asarray(image, dtype=np.float64).squeeze())) for image in images]
    if not values:
        raise NoiseLevelError("training.sigma: no images to estimate the noise level from")
    return float(np.median(values))


def physical_params(noise: object) -> dict[str, Any] | None:
    """Plain values describing a noise model's std at a dose, or ``None`` for an unknown model."""
    if isinstance(noise, PhysicalNoiseModel):
        return {
            "model": "physical",
            "I0": noise.I0,
            "sigma_e": noise.sigma_e,
            "p_min": noise.p_min,
            "p_max": noise.p_max,
            "eps": noise.eps,
        }
    if isinstance(noise, (AffineGaussianNoiseModel, GaussianNoiseModel)):
        return {"model": "gaussian", "sigma": noise.sigma}  # both scale as σ/sqrt(dose)
    return None


def check_sigma(spec: Any) -> None:
    """Refuse a ``training.sigma`` that is neither a mode nor a positive finite number, naming the key."""
    if isinstance(spec, bool) or not (isinstance(spec, (int, float)) or spec in SIGMA_MODES or spec is None):
        raise NoiseLevelError(
            f"training.sigma={spec!r} is unknown; use auto, estimate, physical or a noise std on the [0, 1] scale"
        )
    if isinstance(spec, (int, float)) and (not math.isfinite(spec) or spec <= 0):
        raise NoiseLevelError(f"training.sigma must be > 0 (a noise std on the [0, 1] scale), got {spec}")


def resolve_noise_level(
    spec: Any, noise: object | None, training_samples: Callable[[], Sequence[torch.Tensor]]
) -> dict[str, Any]:
    """``training.sigma`` as plain values: ``{"kind": "constant", "sigma", "source"}`` or
    ``{"kind": "physical", ...model parameters}``.

    ``spec``: a positive number (given), ``estimate`` (from ``training_samples()``, noisy training
    images, drawn only when needed), ``physical`` (from ``noise``, the data's noise model) or ``auto`` (physical when the
    data has a known noise model, else estimated).

    Raises:
        NoiseLevelError: physical without a noise model, a non-positive number, or an estimate
            below one 8-bit grey level (images without measurable noise).
    """
    check_sigma(spec)
    if isinstance(spec, (int, float)):
        return {"kind": "constant", "sigma": float(spec), "source": "training.sigma"}
    params = physical_params(noise) if noise is not None else None
    if spec == "physical" or (spec in ("auto", None) and params is not None):
        if params is None:
            raise NoiseLevelError(
                "training.sigma=physical: this data has no noise model (only data=sample or data=simulated "
                "simulate their noise); use training.sigma=estimate or a number"
            )
        return {"kind": "physical", **params}
    samples = training_samples()
    sigma = estimate_sigma(samples)
    if not sigma >= MIN_SIGMA:
        raise NoiseLevelError(
            f"training.sigma: the noise level estimated from {len(samples)} training images is "
            f"{sigma:.2g}, below one 8-bit grey level ({MIN_SIGMA:.4f}): they look noise-free, so there is no noise "
            "level to recorrupt with (R2R) or fuse at (N2V2); set training.sigma=<noise std on the [0, 1] scale> "
            "(or, for N2V2, training.fusion_window=0)"
        )
    return {
        "kind": "constant",
        "sigma": sigma,
        "source": f"estimated (wavelet MAD) from {len(samples)} training images",
    }


class NoiseLevel:
    """σ of a noisy batch: a constant, or the noise model's std at each pixel's local mean and the
    sample's dose (signal-dependent noise of the physical model; ``params["dose"]``, where a run had one
    dose, stands in for a batch without one)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = dict(params)
        if self.params.get("kind") not in ("constant", "physical"):
            raise ValueError(f"unknown noise level {params!r}")

    def __call__(self, noisy: torch.Tensor, dose: torch.Tensor | float | None = None) -> torch.Tensor | float:
        p = self.params
        if p["kind"] == "constant":
            return float(p["sigma"])
        dose = p.get("dose") if dose is None else dose
        if dose is None:
            raise NoiseLevelError("training.sigma=physical: the batch has no dose (only simulated data carries one)")
        dose = torch.as_tensor(dose, dtype=torch.float32, device=noisy.device).reshape(-1, 1, 1, 1)
        if p["model"] == "gaussian":
            return float(p["sigma"]) / dose.sqrt()
        pad = LOCAL_MEAN_SIZE // 2
        local = F.avg_pool2d(F.pad(noisy.float(), (pad, pad, pad, pad), mode="replicate"), LOCAL_MEAN_SIZE, stride=1)
        span = p["p_max"] - p["p_min"]
        counts = (dose * p["I0"] * torch.exp(-(p["p_min"] + span * local))).clamp_min(p["eps"])
        # delta method: var(-log N) ≈ var(N) / E[N]², var(N) = λ + σe² (Poisson + electronic)
        return torch.sqrt(counts + p["sigma_e"] ** 2) / counts / span


def noisy_samples(datamodule: Any, count: int = ESTIMATE_IMAGES) -> list[torch.Tensor]:
    """Up to ``count`` training inputs of ``datamodule``, evenly spaced, drawn without disturbing the
    training RNG (random patches and noise are drawn with a fixed seed)."""
    dataset = datamodule.dataset("train")
    step = max(1, len(dataset) // count)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [dataset[i]["low"] for i in range(0, len(dataset), step)][:count]


def data_noise_level(sigma: Any, datamodule: Any, dose: Any) -> dict[str, Any]:
    """``training.sigma`` resolved on ``datamodule`` (:func:`resolve_noise_level`, with its noise model
    and its training images); a physical level also records ``dose`` when the data has one dose, so
    inference outside training knows the noise level too."""
    level = resolve_noise_level(sigma, getattr(datamodule, "noise", None), lambda: noisy_samples(datamodule))
    return with_dose(level, dose)


def lacks_dose(level: dict[str, Any]) -> bool:
    """Whether ``level`` is physical without a recorded dose: it needs each batch's dose to give σ."""
    return level["kind"] == "physical" and level.get("dose") is None


def with_dose(level: dict[str, Any], dose: Any) -> dict[str, Any]:
    """``level`` with ``dose`` recorded when it is physical, has none yet and ``dose`` is one number."""
    if lacks_dose(level):
        if isinstance(dose, (int, float)) and not isinstance(dose, bool):
            return {**level, "dose": float(dose)}
    return level
