"""The global intensity map from a self-supervised model's output (the denoised *low-dose* image) to
the full-dose target: ``gain · clamp(output, 0, 1) + offset``, fitted by least squares on pairs of a
train or validation split (never the test split) and stored as plain values.

Fitting needs only six sums per image (:func:`image_moments`), so validation can fit the map and
score every image after it in one pass, and several devices can add their sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datamodules.io.atomic import atomic_write
from lightning_modules.nets.forward import run_network

MAP_KEY = "intensity_map"  # the checkpoint hyper-parameter holding {"gain", "offset", "split", "images"}


def image_moments(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 6) float64 sums per image: pixels, Σp, Σt, Σp², Σpt, Σt² of ``clamp(pred)`` and ``target``."""
    p = pred.detach().double().clamp(0.0, 1.0).flatten(1)
    t = target.detach().double().flatten(1)
    n = torch.full((p.shape[0],), p.shape[1], dtype=torch.float64, device=p.device)
    return torch.stack([n, p.sum(1), t.sum(1), (p * p).sum(1), (p * t).sum(1), (t * t).sum(1)], dim=1)


def fit_affine(moments: torch.Tensor) -> tuple[float, float]:
    """Least-squares ``(gain, offset)`` of ``target ≈ gain · pred + offset`` over all pixels of the
    images whose moments are the rows of ``moments`` (a constant prediction gives gain 1)."""
    n, sp, st, spp, spt, _ = moments.double().reshape(-1, 6).sum(0).tolist()
    variance = spp - sp * sp / n
    if variance <= 1e-12 * n:
        return 1.0, (st - sp) / n
    gain = (spt - sp * st / n) / variance
    return gain, (st - gain * sp) / n


def mapped_psnr(moments: torch.Tensor, gain: float, offset: float) -> torch.Tensor:
    """PSNR (dB, data range 1) of each image after the map, from its moments (no clamping after the map)."""
    n, sp, st, spp, spt, stt = moments.double().reshape(-1, 6).unbind(1)
    sse = gain**2 * spp + 2 * gain * offset * sp + n * offset**2 - 2 * gain * spt - 2 * offset * st + stt
    mse = (sse / n).clamp_min(1e-12)
    return -10.0 * torch.log10(mse)


def apply_intensity_map(pred: torch.Tensor, intensity_map: dict[str, Any] | None) -> torch.Tensor:
    """``gain · clamp(pred, 0, 1) + offset`` (the map as stored in a checkpoint); ``pred`` itself when ``None``."""
    if not intensity_map:
        return pred
    return float(intensity_map["gain"]) * pred.clamp(0.0, 1.0) + float(intensity_map["offset"])


class IntensityMap(nn.Module):
    """A network whose output is mapped to full-dose intensities (:func:`apply_intensity_map`)."""

    def __init__(self, net: nn.Module, intensity_map: dict[str, Any]) -> None:
        super().__init__()
        self.net, self.intensity_map = net, dict(intensity_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_intensity_map(self.net(x), self.intensity_map)


def with_intensity_map(net: nn.Module, intensity_map: dict[str, Any] | None) -> nn.Module:
    """``net`` followed by ``intensity_map`` (as stored in a checkpoint); ``net`` itself when ``None``."""
    if not intensity_map:
        return net
    return IntensityMap(net, intensity_map)


@torch.no_grad()
def fit_intensity_map(
    net: nn.Module, dataset: Dataset, split: str, device: torch.device | str = "cpu", bf16: bool = False
) -> dict[str, Any]:
    """Fit the map of ``net`` on every pair of ``dataset`` (samples with ``low`` and ``high``)."""
    device = torch.device(device)
    net = net.to(device).eval()
    total = torch.zeros(6, dtype=torch.float64)
    images = 0
    for batch in DataLoader(dataset, batch_size=1, shuffle=False):
        if "high" not in batch:
            raise ValueError(f"the {split} split has no full-dose images to fit the intensity map on")
        pred = run_network(net, batch["low"].to(device), bf16)
        total += image_moments(pred, batch["high"].to(device)).sum(0).cpu()
        images += len(pred)
    if not images:
        raise ValueError(f"the {split} split is empty: no pairs to fit the intensity map on")
    gain, offset = fit_affine(total)
    return {"gain": gain, "offset": offset, "split": split, "images": images}


INTENSITY_CHOICES = ("auto", "none", "val", "train")


def is_self_supervised(hparams: dict[str, Any]) -> bool:
    """Whether a checkpoint's hyper-parameters say it was trained by a self-supervised method."""
    training = hparams.get("training") or {}
    return str(training.get("method", "supervised")) != "supervised"


def intensity_source(hparams: dict[str, Any], choice: str, evaluated_split: str) -> str | None:
    """Where the map applied when evaluating ``evaluated_split`` comes from: ``"checkpoint"``, the split
    to fit it on (``"val"``/``"train"``; never ``"test"``, never the evaluated split), or ``None``.

    ``auto``: the checkpoint's map if it has one; else, for a self-supervised checkpoint, a map fitted
    on ``val`` (``train`` when evaluating ``val``); a supervised model needs none.
    """
    if choice == "test":
        raise ValueError("intensity=test: the map is never fitted on the test split; use val or train")
    if choice not in INTENSITY_CHOICES:
        raise ValueError(f"intensity={choice!r} is unknown; use one of {', '.join(INTENSITY_CHOICES)}")
    if choice == "none":
        return None
    if choice in ("val", "train"):
        if choice == evaluated_split:
            raise ValueError(
                f"intensity={choice}: the map would be fitted on the split it is evaluated on; use the other one"
            )
        return choice
    if hparams.get(MAP_KEY):
        return "checkpoint"
    if is_self_supervised(hparams):
        return "train" if evaluated_split == "val" else "val"
    return None


def store_intensity_map(path: str | Path, intensity_map: dict[str, Any]) -> Path:
    """Write ``intensity_map`` into the hyper-parameters of a ``.ckpt`` or ``best_model.pth`` (atomically),
    so ``denoise.py``, ``export.py`` and later tests apply it; other formats are refused."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True) if path.suffix != ".safetensors" else {}
    key = next((k for k in ("hyper_parameters", "hparams") if k in checkpoint), None)
    if key is None:
        raise ValueError(f"save_intensity=true: {path} is not a .ckpt or best_model.pth of this project")
    checkpoint[key][MAP_KEY] = dict(intensity_map)
    return atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
