"""How the network's output meets its input: not at all, ``out + x`` (residual learning),
``out + a·x + b`` with two learned scalars (an affine skip: a global intensity map the convolutions
need not learn, without the full-strength noisy input that a plain residual path adds back), or
``out + blind_lowpass(x)`` (a low-pass skip: the input's local brightness, never a pixel's own value)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AFFINE_KEY = "skip.affine"  # the two scalars (a, b) in a DenoisingUnet state dict
# Gaussian std (pixels) of the low-pass skip: wide enough that its noise is small (std × ~0.07 for
# white noise), narrow enough to follow the brightness of ribs and the heart border.
LOWPASS_SIGMA = 4.0


def check_skip(residual: bool | str) -> bool | str:
    """``model.residual``: false, true, affine or lowpass; the error names the key."""
    if not (isinstance(residual, bool) or residual in ("affine", "lowpass")):
        raise ValueError(f"model.residual={residual!r} is unknown; use false, true, affine or lowpass")
    return residual


def keeps_blind_spot(residual: bool | str | None) -> bool:
    """Whether the skip ``residual`` leaves each output pixel blind to its own input value (none at all,
    ``None``, counts as the plain network)."""
    return residual in (False, None, "lowpass")


def blind_lowpass(x: torch.Tensor, sigma: float = LOWPASS_SIGMA) -> torch.Tensor:
    """A Gaussian blur of (B, 1, H, W) ``x`` whose kernel has a hole at its centre (the rest renormalised),
    so no output pixel depends on its own input value: the skip keeps a blind spot blind. Edges are
    replicated; computed in fp32 (in the autocast dtype inside an autocast region, like the network).

    Example:
        >>> x = torch.zeros(1, 1, 31, 31); x[..., 15, 15] = 1.0
        >>> float(blind_lowpass(x)[..., 15, 15])
        0.0
    """
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device) / sigma) ** 2)
    taps = taps / taps.sum()
    centre = taps[radius] * taps[radius]  # the 2-D kernel's weight on the pixel itself
    x = x.float()
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(F.conv2d(padded, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    return (blurred - centre * x) / (1 - centre)


class InputSkip(nn.Module):
    """``forward(out, x)``: ``out`` (``residual=False``), ``out + x`` (``True``), ``out + a·x + b``
    (``"affine"``; ``a`` and ``b`` start at 0, so training starts from the plain network) or
    ``out + blind_lowpass(x)`` (``"lowpass"``)."""

    def __init__(self, residual: bool | str = False) -> None:
        super().__init__()
        self.mode = check_skip(residual)
        if self.mode == "affine":
            self.affine = nn.Parameter(torch.zeros(2))

    def forward(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "affine":
            a, b = self.affine.to(out.dtype).unbind()
            return out + a * x.to(out.dtype) + b
        if self.mode == "lowpass":
            return out + blind_lowpass(x).to(out.dtype)
        return out + x.to(out.dtype) if self.mode else out
