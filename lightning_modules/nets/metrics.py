"""Per-image image-quality metrics against the clean target, on [0, 1] intensities (data_range 1.0)."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

METRIC_NAMES = ("psnr", "ssim", "mse")


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """PSNR (dB), SSIM and MSE of each image in a (B, 1, H, W) batch; returns tensors of shape (B,).

    ``pred`` is clamped to [0, 1] first (the range every stored image has); both are taken in fp32,
    and computed in fp32 even inside a bf16 autocast region (Lightning's ``bf16-mixed`` validation):
    SSIM's Gaussian-window convolutions in bf16 lose its small local variances and read far too low.
    SSIM uses torchmetrics' defaults: Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03.
    """
    pred = pred.detach().float().clamp(0.0, 1.0)
    target = target.detach().float()
    with torch.autocast(pred.device.type, enabled=False):
        return {
            "psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
            "ssim": structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none"),
            "mse": ((pred - target) ** 2).flatten(1).mean(dim=1),
        }
