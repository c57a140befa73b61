r"""The Generalised Anscombe Transform (GAT) for Poisson-Gaussian counts, and its inverses.

For counts :math:`N = \mathrm{Poisson}(\lambda) + \mathcal{N}(0, \sigma^2)` (unit gain, zero offset)

.. math:: f(N) = 2\sqrt{\max(N + 3/8 + \sigma^2,\ 0)}

has a variance close to 1 whatever :math:`\lambda`, so a denoiser built for additive white Gaussian
noise of standard deviation 1 can be applied to :math:`f(N)`. Two ways back:

- :func:`gat_inverse_algebraic`: :math:`(D/2)^2 - 3/8 - \sigma^2`, the exact inverse of ``f``; biased
  when applied to a *denoised* (i.e. averaged) value, because ``f`` is concave.
- :func:`gat_inverse_unbiased`: the closed-form approximation of the exact unbiased inverse of
  Mäkitalo & Foi, "Optimal inversion of the generalized Anscombe transformation for Poisson-Gaussian
  noise", IEEE Trans. Image Process. 22(1), 2013: it maps :math:`E[f(N)\mid\lambda]` back to :math:`\lambda`.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT_3_2 = math.sqrt(1.5)


def gat_forward(counts: np.ndarray, sigma: float) -> np.ndarray:
    """GAT of photon counts with electronic noise ``sigma`` (counts); result has unit noise variance."""
    return 2.0 * np.sqrt(np.maximum(np.asarray(counts, dtype=np.float64) + 0.375 + sigma**2, 0.0))


def gat_inverse_algebraic(z: np.ndarray, sigma: float) -> np.ndarray:
    """The algebraic inverse ``(z/2)² − 3/8 − σ²`` (exact for ``gat_forward`` of a count ≥ −3/8 − σ²)."""
    z = np.asarray(z, dtype=np.float64)
    return (z / 2.0) ** 2 - 0.375 - sigma**2


def gat_inverse_unbiased(z: np.ndarray, sigma: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo & Foi 2013), counts ≥ 0.

    Values below ``gat_forward(0, sigma)`` (the transform of zero counts) are treated as that value:
    the series has negative powers of ``z`` and turns upward again near 0.
    """
    z = np.maximum(np.asarray(z, dtype=np.float64), 2.0 * math.sqrt(0.375 + sigma**2))
    counts = (
        z**2 / 4.0 + _SQRT_3_2 / (4.0 * z) - 11.0 / (8.0 * z**2) + 5.0 * _SQRT_3_2 / (8.0 * z**3) - 1.0 / 8.0 - sigma**2
    )
    return np.maximum(counts, 0.0)
