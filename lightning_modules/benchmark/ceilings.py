"""What the hardware can do (measured matmul and 3×3-convolution GFLOP/s) and what the model needs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightning_modules.benchmark.measure import time_calls


def matmul_gflops(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 1024, repeats: int = 3) -> float:
    """GFLOP/s of an ``n``×``n`` by ``n``×``n`` matrix product (2n³ FLOPs) in ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    timing = time_calls(lambda: a @ b, repeats=repeats, device=device)
    return 2 * n**3 / timing.median_s / 1e9


def conv3x3_gflops(
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    channels: int = 64,
    size: int = 256,
    batch: int = 1,
    repeats: int = 3,
) -> float:
    """GFLOP/s of a 3×3, ``channels``→``channels`` convolution on ``batch``×``size``² (channels_last)."""
    x = torch.randn(batch, channels, size, size, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        timing = time_calls(lambda: F.conv2d(x, w, padding=1), repeats=repeats, device=device)
    return 2 * channels * channels * 9 * size * size * batch / timing.median_s / 1e9


def model_gflop_per_mpix(net: nn.Module, size: int = 256) -> dict[str, float]:
    """GFLOP per megapixel of ``net`` (forward; forward + backward of an L1 loss), counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` on a 1×1×``size``² input (``size`` % 32 == 0)."""
    mpix = size * size / 1e6
    x = torch.rand(1, 1, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as forward:
        net(x)
    with FlopCounterMode(display=False) as both:
        (net(x) - x).abs().mean().backward()
    net.zero_grad(set_to_none=True)
    return {
        "forward": forward.get_total_flops() / 1e9 / mpix,
        "forward_backward": both.get_total_flops() / 1e9 / mpix,
    }
