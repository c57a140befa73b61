"""Self-ensembling at test time: average a network's outputs over flips and transposes."""

from __future__ import annotations

import torch
from torch import nn


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th of the 8 flips/rotations of the last two axes (k = 0 is the identity)."""
    if k >= 4:
        x = x.transpose(-2, -1)
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    return x


def inverse_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    if k >= 4:
        x = x.transpose(-2, -1)
    return x


class SelfEnsemble(nn.Module):
    """Runs ``net`` on ``transforms`` (4: flips, 8: flips and transposes) views and averages.

    The network is translation- but not flip-equivariant, so the views give slightly different
    errors that partly cancel; costs ``transforms`` forward passes.
    """

    def __init__(self, net: nn.Module, transforms: int = 8) -> None:
        super().__init__()
        if transforms not in (4, 8):
            raise ValueError(f"tta={transforms}: use 4 (flips) or 8 (flips and transposes)")
        self.net, self.transforms = net, transforms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for k in range(self.transforms):
            # With one channel a contiguous tensor is also channels_last, so .contiguous() suits both.
            out = inverse_dihedral(self.net(dihedral(x, k).contiguous()).float(), k)
            total = out if total is None else total + out
        return total / self.transforms


class DihedralView(nn.Module):
    """Runs ``net`` on the ``k``-th dihedral view only and turns the output back (how one view of
    ``tta=8`` scores on its own: ``scripts/test.py view=k``)."""

    def __init__(self, net: nn.Module, k: int) -> None:
        super().__init__()
        if not 0 <= k < 8:
            raise ValueError(f"view={k}: use 0..7 (0 = the image as it is; see dihedral())")
        self.net, self.k = net, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return inverse_dihedral(self.net(dihedral(x, self.k).contiguous()).float(), self.k)


def with_tta(net: nn.Module, tta: int | bool | None) -> nn.Module:
    """``tta`` from a config: false/0/1 = the network alone, true or 4 = the 4 flips, 8 = flips and transposes."""
    if tta is True:  # checked first: True == 1 in Python
        # the 4 flips: nearly all of the gain at half the passes of 8 (shipped model, test split:
        # 31.94 dB alone, 32.11 with 4 views, 32.14 with 8; docs/model_card.md)
        tta = 4
    if tta in (None, False, 0, 1):
        return net
    return SelfEnsemble(net, int(tta))
