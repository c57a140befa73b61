"""Per-image image-quality metrics against the clean target, on [0, 1] intensities (data_range 1.0)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

METRIC_NAMES = ("psnr", "ssim", "mse")


@contextmanager
def exact_fp32_convolutions(device: torch.device | str) -> Iterator[None]:
    """A context in which fp32 convolutions on ``device`` keep their full precision.

    CUDA runs fp32 convolutions in TF32 by default (10-bit mantissa inputs). SSIM takes local variances as
    E[x²] − E[x]² of its Gaussian-window convolutions, and that difference loses most of its digits to
    TF32 rounding (a GPU's SSIM of the same images came out 0.004 low; docs/history.md). The CPU needs nothing.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    with cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
    ):
        yield


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """PSNR (dB), SSIM and MSE of each image in a (B, 1, H, W) batch; returns tensors of shape (B,).

    ``pred`` is clamped to [0, 1] first (the range every stored image has); both are taken in fp32,
    and computed in fp32 even inside a bf16 autocast region (Lightning's ``bf16-mixed`` validation):
    SSIM's Gaussian-window convolutions in bf16 lose its small local variances and read far too low
    (and in CUDA's default TF32 a little low, hence ``exact_fp32_convolutions``).
    SSIM uses torchmetrics' defaults: Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03.
    """
    pred = pred.detach().float().clamp(0.0, 1.0)
    target = target.detach().float()
    with torch.autocast(pred.device.type, enabled=False), exact_fp32_convolutions(pred.device):
        return {
            "psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
            "ssim": structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none"),
            "mse": ((pred - target) ** 2).flatten(1).mean(dim=1),
        }
