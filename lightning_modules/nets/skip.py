"""How the network's output meets its input: not at all, ``out + x`` (residual learning), or
``out + a·x + b`` with two learned scalars (an affine skip: a global intensity map the convolutions
need not learn, without the full-strength noisy input that a plain residual path adds back)."""

from __future__ import annotations

import torch
from torch import nn

AFFINE_KEY = "skip.affine"  # the two scalars (a, b) in a DenoisingUnet state dict


def check_skip(residual: bool | str) -> bool | str:
    """``model.residual``: false, true or affine; the error names the key."""
    if not (isinstance(residual, bool) or residual == "affine"):
        raise ValueError(f"model.residual={residual!r} is unknown; use false, true or affine")
    return residual


class InputSkip(nn.Module):
    """``forward(out, x)``: ``out`` (``residual=False``), ``out + x`` (``True``) or ``out + a·x + b``
    (``"affine"``; ``a`` and ``b`` start at 0, so training starts from the plain network)."""

    def __init__(self, residual: bool | str = False) -> None:
        super().__init__()
        self.mode = check_skip(residual)
        if self.mode == "affine":
            self.affine = nn.Parameter(torch.zeros(2))

    def forward(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "affine":
            a, b = self.affine.to(out.dtype).unbind()
            return out + a * x.to(out.dtype) + b
        return out + x.to(out.dtype) if self.mode else out
