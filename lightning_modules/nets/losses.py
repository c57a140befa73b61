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


LOSSES: dict[str, type[nn.Module]] = {
    "l1": nn.L1Loss,
    "mse": nn.MSELoss,
    "charbonnier": CharbonnierLoss,
    "ssim_l1": SSIML1Loss,
}


def build_loss(name: str, **kwargs: float) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`) with its keyword parameters."""
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is unknown; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)
