"""Noise and dose models: each one small object with one job, ``simulate(clean, dose, generator) -> noisy``.

- :class:`PhysicalNoiseModel`: photon counts (Poisson) + electronic Gaussian noise, then log transform.
- :class:`AffineGaussianNoiseModel`: the measured degradation of the paired radiographs (intensity
  change + white Gaussian noise).
- :class:`GaussianNoiseModel`: additive white Gaussian noise, for comparison with the literature.

All follow :class:`NoiseModel`, so datasets, reports, tests and notebooks use them alike; the config
group ``data/noise`` chooses one.
"""

from __future__ import annotations

import io
import math
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image


@runtime_checkable
class NoiseModel(Protocol):
    """What every noise/dose model offers: a low-dose image of ``clean`` at dose fraction ``dose``."""

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


class PhysicalNoiseModel:
    r"""Simulate an X-ray acquisition at a fraction ``dose`` of the reference dose.

    Display intensity ``x`` in [0, 1] (bright = dense) maps linearly to the line integral of
    attenuation, ``p = p_min + (p_max - p_min) x``, an invertible, documented choice: ``p_min`` is
    the attenuation behind the thinnest tissue, ``p_max`` behind the densest bone. Then

    .. math::
        \lambda = d\,I_0\,e^{-p}, \qquad N = \mathrm{Poisson}(\lambda) + \mathcal{N}(0, \sigma_e^2),
        \qquad \hat p = -\ln\frac{\max(N, \varepsilon)}{d\,I_0}

    and ``x̂ = (p̂ - p_min) / (p_max - p_min)``, clipped to [0, 1] unless ``clip=False``.

    Args:
        I0: photons per pixel of the unattenuated beam at full dose (``d = 1``).
        sigma_e: standard deviation of the electronic noise, in photon counts.
        p_min, p_max: line integrals of display intensity 0 and 1.
        eps: floor on counts before the logarithm (photon starvation).
        clip: clip the result to [0, 1].

    Example:
        >>> model = PhysicalNoiseModel(I0=2000.0, sigma_e=5.0)
        >>> noisy = model.simulate(torch.full((1, 8, 8), 0.5), dose=0.25, generator=torch.Generator().manual_seed(0))
        >>> noisy.shape
        torch.Size([1, 8, 8])
    """

    def __init__(
        self,
        I0: float = 2000.0,  # noqa: N803 - the physics symbol
        sigma_e: float = 5.0,
        p_min: float = 0.1,
        p_max: float = 3.0,
        eps: float = 1.0,
        clip: bool = True,
    ) -> None:
        if I0 <= 0:
            raise ValueError(f"I0 must be > 0, got {I0}")
        if sigma_e < 0:
            raise ValueError(f"sigma_e must be >= 0, got {sigma_e}")
        if not p_max > p_min:
            raise ValueError(f"p_max ({p_max}) must be greater than p_min ({p_min})")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.I0, self.sigma_e, self.p_min, self.p_max, self.eps, self.clip = (
            float(I0),
            float(sigma_e),
            float(p_min),
            float(p_max),
            float(eps),
            clip,
        )

    def line_integral(self, x: torch.Tensor) -> torch.Tensor:
        return self.p_min + (self.p_max - self.p_min) * x

    def display(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.p_min) / (self.p_max - self.p_min)

    def expected_counts(self, clean: torch.Tensor, dose: float) -> torch.Tensor:
        return dose * self.I0 * torch.exp(-self.line_integral(clean))

    def counts(self, clean: torch.Tensor, dose: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Observed detector counts ``N`` (float tensor, same shape as ``clean``)."""
        if not dose > 0:
            raise ValueError(f"dose must be > 0, got {dose}")
        rate = self.expected_counts(clean.float(), dose)
        counts = torch.poisson(rate, generator=generator)
        if self.sigma_e > 0:
            counts = counts + self.sigma_e * torch.randn(
                rate.shape, generator=generator, dtype=rate.dtype, device=rate.device
            )
        return counts

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Low-dose image of ``clean`` (values in [0, 1]) at dose fraction ``dose``."""
        counts = self.counts(clean, dose, generator)
        p_hat = -torch.log(counts.clamp_min(self.eps) / (dose * self.I0))
        out = self.display(p_hat)
        return out.clamp_(0.0, 1.0) if self.clip else out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(I0={self.I0:g}, sigma_e={self.sigma_e:g}, p_min={self.p_min:g}, "
            f"p_max={self.p_max:g})"
        )


class GaussianNoiseModel:
    """Plain additive white Gaussian noise, ``σ / sqrt(dose)`` (for comparison with the literature)."""

    def __init__(self, sigma: float = 0.05, clip: bool = True) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma, self.clip = float(sigma), clip

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        noise = _standard_normal(clean, dose, generator)
        out = clean + self.sigma / math.sqrt(dose) * noise
        return out.clamp_(0.0, 1.0) if self.clip else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma:.4g}, clip={self.clip})"


class AffineGaussianNoiseModel:
    r"""The degradation measured on the team's paired radiographs.

    .. math:: y = \mathrm{clip}_{[f,1]}(g\,x + b + n), \quad n \sim \mathcal{N}(0, \sigma^2)

    with the defaults ``g = 0.585``, ``b = 12.2/255`` and ``σ = 11.8/255`` measured on ``cxr-pairs``
    (darker, lower-contrast and noisy), optionally rounded to ``quantize_bits`` like a stored image and,
    for a share ``jpeg_fraction`` of the images, stored as JPEG at ``jpeg_quality``. ``floor`` is the
    lowest value the detector chain stores (the pairs clip at 10/255). At a dose fraction ``d`` other
    than 1 the noise becomes ``σ / sqrt(d)`` (quantum-noise scaling). ``scripts/fit_noise.py`` fits all of
    these to a folder of pairs.

    Args:
        gain: multiplicative intensity change ``g``.
        offset: additive intensity change ``b`` (on the [0, 1] scale).
        sigma: standard deviation of the signal-independent Gaussian noise (on the [0, 1] scale).
        quantize_bits: round the result to this many bits (``None`` keeps floats).
        floor: clip the result to ``[floor, 1]``.
        jpeg_quality: JPEG-compress at this quality (1-95; 8-bit, each 2-D image whole); ``None``: never.
        jpeg_fraction: the probability that an image is JPEG-compressed (with ``jpeg_quality``).

    Example:
        >>> clean = torch.full((1, 8, 8), 0.5)
        >>> noisy = AffineGaussianNoiseModel().simulate(clean, 1.0, torch.Generator().manual_seed(0))
        >>> noisy.shape
        torch.Size([1, 8, 8])
    """

    def __init__(
        self,
        gain: float = 0.585,
        offset: float = 12.2 / 255,
        sigma: float = 11.8 / 255,
        quantize_bits: int | None = 8,
        floor: float = 0.0,
        jpeg_quality: int | None = None,
        jpeg_fraction: float = 1.0,
    ) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        check_bits(quantize_bits)
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95 or None, got {jpeg_quality}")
        self.gain = float(gain)
        self.offset = float(offset)
        self.sigma = float(sigma)
        self.quantize_bits = quantize_bits
        self.floor = float(floor)
        self.jpeg_quality = None if jpeg_quality is None else int(jpeg_quality)
        self.jpeg_fraction = check_fraction(jpeg_fraction, "jpeg_fraction")

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Degrade ``clean`` (any shape, values in [0, 1]); ``generator`` fixes the noise."""
        noise = _standard_normal(clean, dose, generator)
        sigma = self.sigma / math.sqrt(dose)
        noisy = (self.gain * clean + self.offset + sigma * noise).clamp_(self.floor, 1.0)
        noisy = quantize(noisy, self.quantize_bits)
        if self.jpeg_quality is not None and float(torch.rand((), generator=generator)) < self.jpeg_fraction:
            noisy = jpeg_roundtrip(noisy, self.jpeg_quality)
        return noisy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gain={self.gain:.4g}, offset={self.offset:.4g}, "
            f"sigma={self.sigma:.4g}, quantize_bits={self.quantize_bits}, floor={self.floor:.4g}, "
            f"jpeg_quality={self.jpeg_quality}, jpeg_fraction={self.jpeg_fraction:.3g})"
        )


def check_bits(bits: int | None, key: str = "quantize_bits") -> int | None:
    """``bits`` if it is a bit depth in 1..16 or ``None``; else an error naming ``key``."""
    if bits is not None and not 1 <= bits <= 16:
        raise ValueError(f"{key} must be in 1..16 or None, got {bits}")
    return bits


def quantize(image: torch.Tensor, bits: int | None) -> torch.Tensor:
    """``image`` (in [0, 1]) rounded to ``bits`` bits, as a detector stores it; ``None`` keeps floats."""
    if bits is None:
        return image
    levels = float((1 << int(bits)) - 1)
    return torch.round(image * levels) / levels


def jpeg_roundtrip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """``image`` (values in [0, 1], any leading dimensions) stored as 8-bit greyscale JPEG and read back;
    each trailing 2-D image is compressed whole, so its 8×8 block grid starts at its top-left corner."""
    planes = image.detach().float().reshape(-1, *image.shape[-2:]).clamp(0.0, 1.0)
    out = torch.empty_like(planes)
    for i, plane in enumerate(planes):
        pixels = (plane * 255.0).round().to(torch.uint8).cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"), dtype=np.float32)
        out[i] = torch.from_numpy(decoded / 255.0)
    return out.reshape(image.shape).to(image.dtype)


def check_fraction(value: float, key: str) -> float:
    """``value`` as a float if it is a share in [0, 1]; else an error naming ``key``."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{key} must be in [0, 1], got {value}")
    return float(value)


def check_noise_model(noise: object, key: str) -> object:
    """``noise`` if it has ``simulate(clean, dose, generator)``; else an error naming the config ``key``."""
    if not callable(getattr(noise, "simulate", None)):
        raise TypeError(f"{key} must have a simulate(clean, dose, generator) method, got {noise!r}")
    return noise


def _standard_normal(clean: torch.Tensor, dose: float, generator: torch.Generator | None) -> torch.Tensor:
    """Unit white Gaussian noise shaped like ``clean``, after checking the dose is positive."""
    if not dose > 0:
        raise ValueError(f"dose must be > 0, got {dose}")
    return torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)


DoseSpec = float | tuple[float, float] | list[float]


def check_dose(dose: DoseSpec, key: str = "data.dose") -> DoseSpec:
    """Validate a dose or a ``[low, high]`` range (0 < low <= high); the error names ``key``."""
    if isinstance(dose, (int, float)):
        if not dose > 0:
            raise ValueError(f"{key} must be > 0, got {dose}")
        return float(dose)
    values = [float(v) for v in dose]
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ValueError(f"{key} must be a dose > 0 or a range [low, high] with 0 < low <= high, got {list(dose)}")
    return (values[0], values[1])


def sample_dose(dose: DoseSpec, generator: torch.Generator | None = None) -> float:
    """A fixed dose, or a log-uniform draw from ``(low, high)`` for dose-blind training."""
    if isinstance(dose, (int, float)):
        return float(dose)
    low, high = (float(v) for v in dose)
    u = float(torch.rand((), generator=generator))
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
