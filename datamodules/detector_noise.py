"""Noise of real flat-panel detectors whose brightness is right: the literature's display-domain
Poisson–Gaussian model, and a family that draws a different detector for every image (blind training).

- :class:`PoissonGaussianNoiseModel`: ``clip(Poisson(η·x)/η + N(0, σ²))`` stored at 8 bits, with η and σ
  drawn per image; its defaults are the SharpXR evaluation protocol (η ~ U(50, 300), σ ~ U(5, 25)/255).
- :class:`DetectorNoiseFamily`: per image, one of: photon counting in the line-integral domain with a
  random detector (``I0``, ``sigma_e``, attenuation mapping), display-domain Poisson–Gaussian, or no
  noise; optionally spatially correlated (the noise blurred by a scintillator point spread) and stored at
  8, 12 or 16 bits.

Both follow :class:`datamodules.noise.NoiseModel`: ``simulate(clean, dose, generator) -> noisy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from datamodules.noise import PhysicalNoiseModel, check_bits, check_fraction, quantize

Range = float | Sequence[float]


def _range(value: Range, key: str, low: float = 0.0) -> tuple[float, float]:
    """``(lo, hi)`` from a number or a pair; an error naming ``key`` unless ``low <= lo <= hi``."""
    pair = (float(value), float(value)) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(pair) != 2 or not low <= pair[0] <= pair[1]:
        raise ValueError(f"{key} must be a number or a range [lo, hi] with {low:g} <= lo <= hi, got {value}")
    return pair


def _uniform(bounds: tuple[float, float], generator: torch.Generator | None) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * float(torch.rand((), generator=generator))


def _log_uniform(bounds: tuple[float, float], generator: torch.Generator | None) -> float:
    return math.exp(_uniform((math.log(bounds[0]), math.log(bounds[1])), generator))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` (any leading dimensions, last two spatial) blurred by a normalised Gaussian of ``sigma``
    pixels, edges reflected: the point spread of a detector's scintillator."""
    if sigma <= 0:
        return image
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = image.reshape(-1, 1, *image.shape[-2:])
    mode = "reflect" if min(image.shape[-2:]) > radius else "replicate"
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1))
    return planes.reshape(image.shape)


class PoissonGaussianNoiseModel:
    r"""Display-domain Poisson–Gaussian noise, as low-dose radiograph denoising papers simulate it:

    .. math:: y = \mathrm{clip}_{[0,1]}\big(\mathrm{Poisson}(\eta d\,x)/(\eta d) + \mathcal{N}(0, \sigma^2)\big)

    with ``η`` (photons at display intensity 1) and ``σ`` drawn uniformly per image from their ranges and
    ``d`` the dose fraction (1 = the protocol), rounded to ``quantize_bits``. The defaults are the SharpXR
    protocol (MICCAI MIRASOL 2025): η ~ U(50, 300), σ ~ U(5, 25)/255, stored as 8-bit images.

    Example:
        >>> noisy = PoissonGaussianNoiseModel().simulate(torch.full((1, 8, 8), 0.5), 1.0, torch.Generator().manual_seed(0))
        >>> noisy.shape, bool(noisy.min() >= 0 and noisy.max() <= 1)
        (torch.Size([1, 8, 8]), True)
    """

    def __init__(
        self, eta: Range = (50.0, 300.0), sigma: Range = (5 / 255, 25 / 255), quantize_bits: int | None = 8
    ) -> None:
        self.eta = _range(eta, "eta", low=1e-6)
        self.sigma = _range(sigma, "sigma")
        self.quantize_bits = check_bits(quantize_bits)

    def noise(self, clean: torch.Tensor, dose: float, generator: torch.Generator | None) -> torch.Tensor:
        """The noise alone (``y - x`` before clipping) of one draw of η and σ."""
        if not dose > 0:
            raise ValueError(f"dose must be > 0, got {dose}")
        eta = _uniform(self.eta, generator) * dose
        sigma = _uniform(self.sigma, generator)
        clean = clean.float()
        shot = torch.poisson(eta * clean.clamp(0.0, 1.0), generator=generator) / eta - clean
        return shot + sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        noisy = (clean.float() + self.noise(clean, dose, generator)).clamp_(0.0, 1.0)
        return quantize(noisy, self.quantize_bits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eta={self.eta}, sigma={self.sigma}, quantize_bits={self.quantize_bits})"


class DetectorNoiseFamily:
    """A different low-dose detector for every image, so one network learns to denoise blind.

    Each call draws a family (shares ``physical_share``, ``display_share``, the rest no noise at all, so
    the network learns to leave clean images alone), then its parameters:

    - physical: :class:`datamodules.noise.PhysicalNoiseModel` at the given ``dose`` with ``I0``
      log-uniform, ``sigma_e``, ``p_min`` and ``p_max`` uniform in their ranges;
    - display: :class:`PoissonGaussianNoiseModel` with ``eta`` log-uniform and ``sigma`` uniform, at dose 1
      (its ``eta`` range is its dose range).

    With probability ``correlated_share`` the noise is blurred by a Gaussian point spread of ``psf_sigma``
    pixels (flat-panel detectors: the scintillator spreads each photon's light); the clean image is not
    blurred, since the full-dose image went through the same detector. The result is stored at a bit
    depth drawn from ``bits``.

    Example:
        >>> family = DetectorNoiseFamily()
        >>> family.simulate(torch.full((1, 16, 16), 0.5), 0.25, torch.Generator().manual_seed(1)).shape
        torch.Size([1, 16, 16])
    """

    def __init__(
        self,
        physical_share: float = 0.55,
        display_share: float = 0.4,
        I0: Range = (1000.0, 10000.0),  # noqa: N803 - the physics symbol
        sigma_e: Range = (0.0, 15.0),
        p_min: Range = (0.0, 0.5),
        p_max: Range = (2.0, 4.5),
        eta: Range = (40.0, 400.0),
        sigma: Range = (2 / 255, 30 / 255),
        correlated_share: float = 0.25,
        psf_sigma: Range = (0.5, 1.0),
        bits: Sequence[int] = (8, 12, 16),
    ) -> None:
        self.physical_share = check_fraction(physical_share, "physical_share")
        self.display_share = check_fraction(display_share, "display_share")
        if self.physical_share + self.display_share > 1.0 + 1e-9:
            raise ValueError(f"physical_share + display_share must be <= 1, got {physical_share} + {display_share}")
        self.I0 = _range(I0, "I0", low=1e-6)
        self.sigma_e = _range(sigma_e, "sigma_e")
        self.p_min = _range(p_min, "p_min")
        self.p_max = _range(p_max, "p_max")
        if not self.p_max[0] > self.p_min[1]:
            raise ValueError(f"p_max's range {list(self.p_max)} must lie above p_min's {list(self.p_min)}")
        self.eta = _range(eta, "eta", low=1e-6)
        self.sigma = _range(sigma, "sigma")
        self.correlated_share = check_fraction(correlated_share, "correlated_share")
        self.psf_sigma = _range(psf_sigma, "psf_sigma")
        self.bits = tuple(int(b) for b in bits)
        if not self.bits or not all(1 <= b <= 16 for b in self.bits):
            raise ValueError(f"bits must list bit depths in 1..16, got {list(bits)}")

    def _physical(self, clean: torch.Tensor, dose: float, generator: torch.Generator | None) -> torch.Tensor:
        model = PhysicalNoiseModel(
            I0=_log_uniform(self.I0, generator),
            sigma_e=_uniform(self.sigma_e, generator),
            p_min=_uniform(self.p_min, generator),
            p_max=_uniform(self.p_max, generator),
        )
        return model.simulate(clean, dose, generator) - clean

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        clean = clean.float()
        family = float(torch.rand((), generator=generator))
        if family < self.physical_share:
            noise = self._physical(clean, dose, generator)
        elif family < self.physical_share + self.display_share:
            eta = _log_uniform(self.eta, generator)
            noise = PoissonGaussianNoiseModel(eta, self.sigma, None).noise(clean, 1.0, generator)
        else:
            noise = torch.zeros_like(clean)
        if float(torch.rand((), generator=generator)) < self.correlated_share:
            noise = gaussian_blur(noise, _uniform(self.psf_sigma, generator))
        bits = self.bits[int(torch.randint(len(self.bits), (), generator=generator))]
        return quantize((clean + noise).clamp_(0.0, 1.0), bits)

    def evaluation_noise(self) -> PhysicalNoiseModel:
        """What reports evaluate a model of this family on: a family has no one noise level, so the
        project's physical dose study (default detector) at the report's doses."""
        return PhysicalNoiseModel()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(physical_share={self.physical_share:g}, display_share={self.display_share:g}, "
            f"I0={self.I0}, sigma_e={self.sigma_e}, eta={self.eta}, correlated_share={self.correlated_share:g})"
        )
