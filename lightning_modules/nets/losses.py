"""Training losses, chosen by name from the ``loss`` config group."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure


class CharbonnierLoss(nn.Module):
    """Smooth L1: mean of sqrt((pred - target)² + eps²)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"loss.eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


class SSIML1Loss(nn.Module):
    """``alpha · (1 − SSIM) + (1 − alpha) · L1`` with SSIM on data_range 1.0."""

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"loss.alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # SSIM's small-variance terms are unstable in bf16; compute the loss in fp32.
        pred, target = pred.float(), target.float()
        ssim = structural_similarity_index_measure(pred, target, data_range=1.0)
        return self.alpha * (1.0 - ssim) + (1.0 - self.alpha) * F.l1_loss(pred, target)


class PSNRLoss(nn.Module):
    """Minus the mean per-image PSNR, offset to 0 at the target: mean of ``10·log10(1 + MSE_i / floor)``.

    Every image counts in decibels, as in the reported mean PSNR: under MSE or L1 the noisiest inputs
    dominate the gradient, and a blind model trained on a wide dose range learns to leave little noise
    behind there while smoothing images that had little. ``floor`` is the MSE (1e-5: 50 dB) below which
    an image needs no further improvement, so noise-free inputs do not outweigh the rest.
    """

    def __init__(self, floor: float = 1e-5) -> None:
        super().__init__()
        if floor <= 0:
            raise ValueError(f"loss.floor must be > 0, got {floor}")
        self.floor = floor

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(dim=1)
        return 10.0 * torch.log10(1.0 + mse / self.floor).mean()


LOSSES: dict[str, type[nn.Module]] = {
    "l1": nn.L1Loss,
    "mse": nn.MSELoss,
    "charbonnier": CharbonnierLoss,
    "ssim_l1": SSIML1Loss,
    "psnr": PSNRLoss,
}


def build_loss(name: str, **kwargs: float) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`) with its keyword parameters."""
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is unknown; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)
