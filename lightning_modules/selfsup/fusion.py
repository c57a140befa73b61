"""Fusing a blind-spot prediction with the pixel's own noisy value (``training.fusion_window``).

A blind-spot network (N2V2) predicts each pixel from its neighbours only, so the pixel's own noisy value
``y``, which holds independent information about it, is thrown away. Given the noise variance ``v_n``
of ``y``, the linear minimum-mean-squared-error combination of the prediction ``μ`` and ``y`` is

    x̂ = μ + w·(y − μ),   w = v_e / (v_e + v_n),

where ``v_e`` is the variance of the prediction's own error. That is unknown without clean images, but
the prediction's error and the pixel's noise are independent, so ``E[(y − μ)²] = v_e + v_n``: the local
mean of ``(y − μ)²`` minus that of ``v_n`` over a ``window``² neighbourhood estimates ``v_e``. Where the
blind spot predicts well (flat regions) ``w`` ≈ 0; at edges and fine detail it misses, ``w`` grows and
the pixel's own value fills in. This is the Gaussian case of Laine et al.'s (NeurIPS 2019) Bayesian
post-processing of a blind-spot output, with a local moment estimate instead of a learned variance.

It needs ``v_n``: the data's noise model (physical, at the images' dose) or a constant σ estimated from
the training images. Underestimating σ lets noise through (``w`` too large); overestimating it only
forgoes part of the gain. ``docs/self_supervised.md`` has the measurements.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.selfsup.noise_level import NoiseLevel, data_noise_level, lacks_dose, with_dose

FUSION_KEY = "fusion"  # hyper-parameter: {"window", "noise_level"} (plain values), or None


def check_fusion_window(window: Any, key: str = "training.fusion_window") -> int:
    """An odd window side ≥ 3, or 0 for no fusion; the error names ``key``."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 0 or (window and window % 2 == 0):
        raise ValueError(f"{key} must be 0 (no fusion) or an odd number of pixels >= 3, got {window!r}")
    if window == 1:
        raise ValueError(f"{key}=1: one pixel cannot estimate a variance; use an odd window >= 3, or 0")
    return window


def _local_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    pad = window // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), window, stride=1)


def fuse_with_input(
    pred: torch.Tensor, noisy: torch.Tensor, noise_var: torch.Tensor | float, window: int
) -> torch.Tensor:
    """``pred + w·(noisy − pred)`` with ``w = v_e / (v_e + noise_var)`` and ``v_e`` the local (``window``²)
    excess of ``(noisy − pred)²`` over ``noise_var`` (never below 0). All (B, C, H, W), fp32 result.

    Example:
        >>> pred, noisy = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
        >>> float(fuse_with_input(pred, noisy, 1.0, 3).max())  # residual² == noise variance: keep pred
        0.0
    """
    pred, noisy = pred.float(), noisy.float()
    noise_var = torch.as_tensor(noise_var, dtype=torch.float32, device=pred.device).expand_as(pred)
    residual = noisy - pred
    excess = (_local_mean(residual**2, window) - _local_mean(noise_var, window)).clamp_min(0.0)
    weight = excess / (excess + noise_var).clamp_min(1e-12)
    return pred + weight * residual


def fuse_at_noise_level(
    pred: torch.Tensor, noisy: torch.Tensor, noise_level: NoiseLevel, window: int, dose: Any = None
) -> torch.Tensor:
    """:func:`fuse_with_input` at ``noise_level``'s σ for ``noisy`` (and ``dose``), in fp32 even inside autocast."""
    with torch.autocast(noisy.device.type, enabled=False):
        sigma = torch.as_tensor(noise_level(noisy.float(), dose), device=noisy.device)
        return fuse_with_input(pred, noisy, sigma**2, window)


class FusedDenoiser(nn.Module):
    """``net`` whose output is fused with its input (:func:`fuse_with_input`) at the noise level
    ``fusion["noise_level"]`` (a :class:`NoiseLevel` spec; a physical one carries the images' dose)."""

    def __init__(self, net: nn.Module, fusion: dict[str, Any]) -> None:
        super().__init__()
        self.net, self.window = net, check_fusion_window(fusion["window"], "fusion.window")
        self.noise_level = NoiseLevel(fusion["noise_level"])
        if lacks_dose(fusion["noise_level"]):
            raise ValueError(
                "fusion: this model's noise level is the physical model's, and no dose is recorded for the images "
                "(a run on a dose range); evaluate with fusion=off, or train at one dose"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self.net(x)
        return fuse_at_noise_level(pred, x, self.noise_level, self.window).to(pred.dtype)


def with_fusion(net: nn.Module, fusion: dict[str, Any] | None) -> nn.Module:
    """``net`` fused with its input as ``fusion`` (stored in a checkpoint) says; ``net`` itself when ``None``."""
    return FusedDenoiser(net, fusion) if fusion else net


def evaluation_fusion(choice: Any, hparams: dict[str, Any], datamodule: Any, dose: Any) -> dict[str, Any] | None:
    """The fusion ``scripts/test.py fusion=<choice>`` applies: ``auto`` (the checkpoint's), ``off``, or an
    odd window, which also fuses a model trained without fusion, at the noise level of the data it was
    trained on (the checkpoint's, else resolved as its ``training.sigma`` says, or ``auto``, on ``datamodule``).

    Self-supervised models only: they return the low-dose image the input is a noisy copy of. The
    derivation assumes a blind-spot prediction (N2V2); on the other methods it is an empirical post-filter
    (measured in ``docs/self_supervised.md``).
    """
    if choice in ("auto", None):
        return hparams.get(FUSION_KEY)
    if choice in ("off", False):
        return None
    window = check_fusion_window(choice, "fusion")
    training = hparams.get("training") or {}
    if training.get("method", "supervised") == "supervised":
        raise ValueError(
            f"fusion={choice}: a supervised model returns full-dose intensities, and fusion mixes in the low-dose "
            "input at the weight its residual sets; on real pairs the brightness gap sets it to ~1. Use fusion=off"
        )
    level = (hparams.get(FUSION_KEY) or {}).get("noise_level") or training.get("noise_level")
    if level is None:
        level = data_noise_level(training.get("sigma", "auto"), datamodule, dose)
    return {"window": window, "noise_level": with_dose(level, dose)}
