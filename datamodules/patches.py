"""Aligned random patches and dihedral augmentation applied identically to every image of a sample."""

from __future__ import annotations

import torch


def random_aligned_crop(
    images: list[torch.Tensor], size: int, generator: torch.Generator | None = None, name: str = "image"
) -> list[torch.Tensor]:
    """Cut the same random ``size``×``size`` window out of each (C, H, W) tensor in ``images``."""
    height, width = images[0].shape[-2:]
    if height < size or width < size:
        raise ValueError(f"{name}: image {width}x{height} is smaller than data.patch_size={size}")
    top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    return [image[..., top : top + size, left : left + size] for image in images]


def random_dihedral(images: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Apply one of the 8 flips/90° rotations, the same one to each tensor in ``images``."""
    choice = int(torch.randint(0, 8, (1,), generator=generator))
    turns, flip = choice % 4, choice >= 4
    out = []
    for image in images:
        if flip:
            image = image.flip(-1)
        if turns:
            image = torch.rot90(image, turns, dims=(-2, -1))
        out.append(image.contiguous())
    return out
