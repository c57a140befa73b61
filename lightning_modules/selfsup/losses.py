"""Self-supervised losses: each takes the network and a noisy batch, and needs no clean image.

All are mean squared errors, whose minimiser is the conditional mean: with a target whose noise is
zero-mean and independent of the input's, it is (up to a constant) the supervised MSE. The ``loss``
config group (L1, SSIM, ...) applies to supervised training only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_modules.selfsup.sampling import (
    blind_spot_centres,
    blind_spot_input,
    neighbour_indices,
    recorrupt,
    subsample,
)

Net = Callable[[torch.Tensor], torch.Tensor]


class Neighbor2NeighborLoss(nn.Module):
    """Neighbor2Neighbor (Huang et al., CVPR 2021).

    Two half-size images ``g1(y)``, ``g2(y)`` from adjacent pixels of every 2×2 cell;
    ``‖f(g1) − g2‖² + w‖f(g1) − g2 − (g1(f(y)) − g2(f(y)))‖²``, where ``f(y)`` runs without gradients
    and the regulariser corrects for ``g1`` and ``g2`` sampling slightly different clean images.
    """

    def __init__(self, regulariser_weight: float = 2.0) -> None:
        super().__init__()
        self.regulariser_weight = float(regulariser_weight)

    def forward(self, net: Net, noisy: torch.Tensor, generator: torch.Generator | None = None, **_: Any):
        first, second = neighbour_indices(noisy, generator)
        g2 = subsample(noisy, second).float()
        out = net(subsample(noisy, first)).float()
        with torch.no_grad():
            full = net(noisy).float()
            gap = subsample(full, first) - subsample(full, second)
        reconstruction = torch.mean((out - g2) ** 2)
        regulariser = torch.mean((out - g2 - gap) ** 2)
        return reconstruction + self.regulariser_weight * regulariser


class BlindSpotLoss(nn.Module):
    """Noise2Void with N2V2's replacement (Höck et al., 2022): one pixel per ``mask_grid``² cell is
    hidden, replaced by the median of the unmasked pixels around it (never itself), and the loss is
    the squared error against its noisy value at those pixels only.

    ``blind_radius`` ≥ 1 hides a (2r+1)² hole around each chosen pixel, so the prediction cannot use
    neighbours whose noise is correlated with the pixel's (JPEG, detector cross-talk).
    """

    def __init__(self, mask_grid: int = 5, blind_radius: int = 0, window_radius: int | None = None) -> None:
        super().__init__()
        self.mask_grid, self.blind_radius = int(mask_grid), int(blind_radius)
        self.window_radius = int(window_radius) if window_radius is not None else self.blind_radius + 2

    def forward(self, net: Net, noisy: torch.Tensor, generator: torch.Generator | None = None, **_: Any):
        centres = blind_spot_centres(noisy.shape, self.mask_grid, generator, noisy.device)
        masked, _ = blind_spot_input(noisy, centres, self.blind_radius, self.window_radius)
        out = net(masked).float()
        centres = centres.expand_as(out)
        return torch.mean((out[centres] - noisy.float()[centres]) ** 2)


class R2RLoss(nn.Module):
    """Recorrupted-to-Recorrupted (Pang et al., CVPR 2021) with ``D = α·I``: ``‖f(y + ασz) − (y − σz/α)‖²``.

    ``sigma`` (a number or a per-pixel tensor) is the noise std of ``y``; see
    :mod:`lightning_modules.selfsup.noise_level`. At inference the network runs on ``y`` itself (one
    pass; the paper averages passes over several recorruptions), whose noise is ``sqrt(1 + α²)``
    times smaller than the training inputs'.
    """

    needs_sigma = True

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(
        self,
        net: Net,
        noisy: torch.Tensor,
        generator: torch.Generator | None = None,
        sigma: torch.Tensor | float | None = None,
        **_: Any,
    ):
        if sigma is None:
            raise ValueError("R2R needs the noise level sigma")
        source, target = recorrupt(noisy.float(), sigma, self.alpha, generator)
        return torch.mean((net(source).float() - target) ** 2)


LOSSES: dict[str, type[nn.Module]] = {
    "neighbor2neighbor": Neighbor2NeighborLoss,
    "n2v2": BlindSpotLoss,
    "r2r": R2RLoss,
}


def build_self_supervised_loss(method: str, **params: Any) -> nn.Module:
    """The loss of ``training.method`` with its parameters (keys not of this method are ignored)."""
    if method not in LOSSES:
        raise ValueError(f"training.method={method!r} has no self-supervised loss; choose one of {sorted(LOSSES)}")
    cls = LOSSES[method]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in params.items() if k in accepted})
