"""What the hardware can do (a 3×3 convolution's GFLOP/s), what the network needs per megapixel, and the
training step (forward, L1, backward, Adam) against that ceiling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.measure import median_seconds


def conv_ceiling(device: torch.device, channels: int, size: int, repeats: int) -> float:
    """GFLOP/s of a 3×3, ``channels``→``channels`` fp32 convolution on 1×``size``² (channels_last)."""
    x = torch.randn(1, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = median_seconds(lambda: _sync(F.conv2d(x, w, padding=1), device), repeats)
    return 2 * channels * channels * 9 * size * size / seconds / 1e9


def gflop_per_mpix(net: nn.Module, backward: bool, size: int = 128) -> float:
    """GFLOP per megapixel of ``net`` (forward, or forward + backward of an L1 loss), counted by
    :class:`~torch.utils.flop_counter.FlopCounterMode` on 1×1×``size``² (no evaluation margin: train mode)."""
    x = torch.rand(1, 1, size, size, device=next(net.parameters()).device)
    training = net.training
    net.train()
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(backward):
        out = net(x)
        if backward:
            (out - x).abs().mean().backward()
    net.zero_grad(set_to_none=True)
    net.train(training)
    return counter.get_total_flops() / 1e9 / (size * size / 1e6)


def training_step_rate(net: nn.Module, device: torch.device, batch: int, patch: int, steps: int) -> float:
    """Mpix/s of training patches through one fp32, channels_last step of a plain loop (one fixed batch)."""
    net = net.to(device, memory_format=torch.channels_last).train()
    low = torch.rand(batch, 1, patch, patch, device=device).contiguous(memory_format=torch.channels_last)
    high = torch.rand(batch, 1, patch, patch, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.l1_loss(net(low), high).backward()
        optimizer.step()
        _sync(None, device)

    return batch * patch * patch / 1e6 / median_seconds(step, steps)


def _sync(value: object, device: torch.device) -> object:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return value
