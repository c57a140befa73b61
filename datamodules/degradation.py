"""Low-dose degradation models: one small object per model, ``simulate(clean) -> noisy``."""

from __future__ import annotations

import math

import torch


class AffineGaussianDegradation:
    r"""The degradation measured on the team's paired radiographs.

    .. math:: y = \mathrm{clip}_{[0,1]}(g\,x + b + n), \quad n \sim \mathcal{N}(0, \sigma^2)

    with the defaults ``g = 0.585``, ``b = 12.2/255`` and ``σ = 11.8/255`` measured on ``cxr-pairs``
    (darker, lower-contrast and noisy), optionally rounded to ``quantize_bits`` like a stored image.
    At a dose fraction ``d`` other than 1 the noise becomes ``σ / sqrt(d)`` (quantum-noise scaling).

    Args:
        gain: multiplicative intensity change ``g``.
        offset: additive intensity change ``b`` (on the [0, 1] scale).
        sigma: standard deviation of the signal-independent Gaussian noise (on the [0, 1] scale).
        quantize_bits: round the result to this many bits (``None`` keeps floats).

    Example:
        >>> clean = torch.full((1, 8, 8), 0.5)
        >>> noisy = AffineGaussianDegradation().simulate(clean, 1.0, torch.Generator().manual_seed(0))
        >>> noisy.shape
        torch.Size([1, 8, 8])
    """

    def __init__(
        self,
        gain: float = 0.585,
        offset: float = 12.2 / 255,
        sigma: float = 11.8 / 255,
        quantize_bits: int | None = 8,
    ) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if quantize_bits is not None and not 1 <= quantize_bits <= 16:
            raise ValueError(f"quantize_bits must be in 1..16 or None, got {quantize_bits}")
        self.gain = float(gain)
        self.offset = float(offset)
        self.sigma = float(sigma)
        self.quantize_bits = quantize_bits

    def simulate(
        self, clean: torch.Tensor, dose: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Degrade ``clean`` (any shape, values in [0, 1]); ``generator`` fixes the noise."""
        if not dose > 0:
            raise ValueError(f"dose must be > 0, got {dose}")
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
        sigma = self.sigma / math.sqrt(dose)
        noisy = (self.gain * clean + self.offset + sigma * noise).clamp_(0.0, 1.0)
        if self.quantize_bits is not None:
            levels = float((1 << self.quantize_bits) - 1)
            noisy = torch.round(noisy * levels) / levels
        return noisy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gain={self.gain:.4g}, offset={self.offset:.4g}, "
            f"sigma={self.sigma:.4g}, quantize_bits={self.quantize_bits})"
        )
