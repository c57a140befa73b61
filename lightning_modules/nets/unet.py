"""The denoising network: ``smp.Unet`` with a ResNet encoder, for any input size."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from lightning_modules.nets.forward import DEFAULT_EVAL_MARGIN, check_margin, forward_padded
from lightning_modules.nets.skip import InputSkip


class DenoisingUnet(nn.Module):
    """Greyscale-in, greyscale-out ``smp.Unet`` that accepts images of any height and width.

    Inputs are padded (edge replication) at the bottom/right to a multiple of ``2**encoder_depth``
    and, in eval mode, by ``eval_margin`` pixels on every side; the output is cropped back, so it
    always has the input's size.

    Args:
        encoder_name: any smp encoder, ``"resnet18"`` by default.
        encoder_weights: ``None`` (random init, no download) or the name of pretrained weights such
            as ``"imagenet"``, which smp downloads on first use.
        residual: ``True``: predict the correction and add it to the input (residual learning);
            ``"affine"``: add ``a·x + b`` with two learned scalars; ``"lowpass"``: add the input's
            Gaussian blur without each pixel's own value (:func:`~lightning_modules.nets.skip.blind_lowpass`);
            ``False``: no skip.
        decoder_attention_type: ``None`` or ``"scse"``.
        decoder_channels: widths of the five decoder stages.
        encoder_depth: number of encoder stages (the padding multiple is ``2**encoder_depth``).
        norm: ``"batch"`` (smp's default) or ``"group"``: every BatchNorm becomes a GroupNorm of
            8 groups, which has no running statistics, so patches and full images are normalised alike.
        eval_margin: pixels of edge replication around every input in eval mode (validation, test,
            inference; training crops get none): keeps the zero padding of the convolutions away
            from the image's own edges (:data:`~lightning_modules.nets.forward.DEFAULT_EVAL_MARGIN`).
        input_block: add :class:`FullResolutionInput`, which gives the decoder's output the input
            image at full resolution (``smp.Unet`` drops that skip: every pixel is rebuilt from
            features at half resolution or coarser).

    Shapes: (B, 1, H, W) → (B, 1, H, W), intensities in [0, 1] (not clamped).
    """

    def __init__(
        self,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        residual: bool | str = False,
        decoder_attention_type: str | None = None,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        encoder_depth: int = 5,
        norm: str = "batch",
        eval_margin: int = DEFAULT_EVAL_MARGIN,
        input_block: bool = False,
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
        self.input_block = FullResolutionInput(decoder_channels[-1]) if input_block else None
        self.skip = InputSkip(residual)
        self.multiple = 2**encoder_depth
        self.eval_margin = check_margin(eval_margin)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """``smp.Unet``'s forward (with the input block) on sides that are multiples of ``multiple``."""
        features = self.unet.encoder(x)
        decoded = self.unet.decoder(features)
        if self.input_block is not None:
            decoded = self.input_block(decoded, x)
        return self.unet.segmentation_head(decoded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = 0 if self.training else self.eval_margin
        return self.skip(forward_padded(self.body, x, self.multiple, margin), x)


class FullResolutionInput(nn.Module):
    """``decoded + f([decoded, x])``: two 3×3 convolutions over the decoder's full-resolution output
    and the input image. The second starts at zero, so a network trained without the block gains it
    with its output unchanged (``init_weights=`` a checkpoint without it)."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, 3, padding=1),
        )
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)

    def forward(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return decoded + self.mix(torch.cat([decoded, x.to(decoded.dtype)], dim=1))


def network_defaults() -> dict[str, Any]:
    """:class:`DenoisingUnet`'s arguments with their default values (tuples as lists)."""
    parameters = inspect.signature(DenoisingUnet.__init__).parameters.values()
    return {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in parameters if p.name != "self"
    }


def _batch_to_group_norm(module: nn.Module, groups: int = 8) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            channels = child.num_features
            setattr(module, name, nn.GroupNorm(groups if channels % groups == 0 else 1, channels))
        else:
            _batch_to_group_norm(child, groups)
