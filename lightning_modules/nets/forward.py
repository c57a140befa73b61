"""Running a network: any image size (pad to its multiple, crop back), and the one inference forward
(no gradients, optional bf16 autocast and channels_last, fp32 out) that tiling, evaluation, the
report and the benchmark share."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def forward_padded(core: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``core`` on ``x`` (B, C, H, W) padded at the bottom/right (edge replication) to a multiple of
    ``multiple``, cropped back to (H, W).

    Example:
        >>> out = forward_padded(lambda t: t[..., ::2, ::2].repeat_interleave(2, -1).repeat_interleave(2, -2),
        ...                      torch.zeros(1, 1, 5, 7), 4)
        >>> tuple(out.shape)
        (1, 1, 5, 7)
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
    return core(padded)[..., :height, :width]


def run_network(
    net: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, bf16: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """``net(batch)`` for inference: no gradients, bf16 autocast on the batch's device when ``bf16``,
    channels-last memory when ``channels_last``; the output comes back as fp32 on the same device."""
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
        return net(batch).float()
