"""Running a network: any image size (pad to its multiple and by a margin, crop back), and the one
inference forward (no gradients, optional bf16 autocast and channels_last, fp32 out) that tiling,
evaluation and the report share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

# Pixels of edge replication around an input at evaluation (docs/model_card.md, "Image edges"): the
# networks here train on crops, and at a zero-padded image edge the shipped one painted streaks where
# bright tissue touched the edge in some orientations (26 dB instead of 31.5 on validation); replicated
# edges move the zero padding 32 px away from the image (all 8 orientations then 31.5 dB).
DEFAULT_EVAL_MARGIN = 32


def eval_margin(hparams: dict[str, Any]) -> int:
    """The evaluation margin a checkpoint's network uses (its ``eval_margin``; older ones: the default)."""
    return check_margin(hparams.get("eval_margin", DEFAULT_EVAL_MARGIN))


def check_margin(margin: Any) -> int:
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"model.eval_margin={margin!r}: use a whole number of pixels >= 0 (0: no margin)")
    return margin


def forward_padded(
    core: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int, margin: int = 0
) -> torch.Tensor:
    """``core`` on ``x`` (B, C, H, W) with ``margin`` pixels of edge replication on every side and more
    at the bottom/right up to a multiple of ``multiple``, cropped back to (H, W).

    Example:
        >>> out = forward_padded(lambda t: t[..., ::2, ::2].repeat_interleave(2, -1).repeat_interleave(2, -2),
        ...                      torch.zeros(1, 1, 5, 7), 4, margin=2)
        >>> tuple(out.shape)
        (1, 1, 5, 7)
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-(height + 2 * margin)) % multiple, (-(width + 2 * margin)) % multiple
    if margin or pad_h or pad_w:
        x = F.pad(x, (margin, margin + pad_w, margin, margin + pad_h), mode="replicate")
    return core(x)[..., margin : margin + height, margin : margin + width]


def run_network(
    net: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, bf16: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """``net(batch)`` for inference: no gradients, bf16 autocast on the batch's device when ``bf16``,
    channels-last memory when ``channels_last``; the output comes back as fp32 on the same device."""
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
        return net(batch).float()
