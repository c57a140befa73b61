"""The denoising network: ``smp.Unet`` with a ResNet encoder, for any input size."""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn


class DenoisingUnet(nn.Module):
    """Greyscale-in, greyscale-out ``smp.Unet`` that accepts images of any height and width.

    Inputs are padded (edge replication) at the bottom/right to a multiple of ``2**encoder_depth``
    and the output is cropped back, so the output always has the input's size.

    Args:
        encoder_name: any smp encoder, ``"resnet18"`` by default.
        encoder_weights: ``None`` (random init, no download) or the name of pretrained weights such
            as ``"imagenet"``, which smp downloads on first use.
        residual: predict the correction and add it to the input (residual learning).
        decoder_attention_type: ``None`` or ``"scse"``.
        decoder_channels: widths of the five decoder stages.
        encoder_depth: number of encoder stages (the padding multiple is ``2**encoder_depth``).
        norm: ``"batch"`` (smp's default) or ``"group"``: every BatchNorm becomes a GroupNorm of
            8 groups, which has no running statistics, so patches and full images are normalised alike.

    Shapes: (B, 1, H, W) → (B, 1, H, W), intensities in [0, 1] (not clamped).
    """

    def __init__(
        self,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        residual: bool = False,
        decoder_attention_type: str | None = None,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        encoder_depth: int = 5,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in ("batch", "group"):
            raise ValueError(f"model.norm={norm!r} is unknown; use batch or group")
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != encoder_depth:
            raise ValueError(
                f"model.decoder_channels needs {encoder_depth} widths (one per encoder stage), got {decoder_channels}"
            )
        self.unet = smp.Unet(
            encoder_name=encoder_name,
            encoder_depth=encoder_depth,
            encoder_weights=encoder_weights,
            decoder_channels=decoder_channels,
            decoder_attention_type=decoder_attention_type,
            in_channels=1,
            classes=1,
        )
        if norm == "group":
            _batch_to_group_norm(self.unet)
        self.residual = residual
        self.multiple = 2**encoder_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % self.multiple, (-width) % self.multiple
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        out = self.unet(padded)[..., :height, :width]
        return out + x if self.residual else out


def _batch_to_group_norm(module: nn.Module, groups: int = 8) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            channels = child.num_features
            setattr(module, name, nn.GroupNorm(groups if channels % groups == 0 else 1, channels))
        else:
            _batch_to_group_norm(child, groups)
