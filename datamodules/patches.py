"""Aligned random patches and dihedral augmentation applied identically to every image of a sample."""

from __future__ import annotations

import torch


def random_aligned_crop(
    images: list[torch.Tensor],
    size: int,
    generator: torch.Generator | None = None,
    name: str = "image",
    min_foreground: float = 0.0,
    background_level: float = 0.05,
    max_tries: int = 10,
) -> list[torch.Tensor]:
    """Cut the same random ``size``×``size`` window out of each (C, H, W) tensor in ``images``.

    Windows in which less than ``min_foreground`` of the pixels of the last image (the clean target)
    exceed ``background_level`` are redrawn, up to ``max_tries`` times; the last draw is kept, so an
    image that is mostly background still yields patches.
    """
    height, width = images[0].shape[-2:]
    if height < size or width < size:
        raise ValueError(f"{name}: image {width}x{height} is smaller than data.patch_size={size}")
    for _ in range(max(1, max_tries)):
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        crops = [image[..., top : top + size, left : left + size] for image in images]
        if min_foreground <= 0 or float((crops[-1] > background_level).float().mean()) >= min_foreground:
            break
    return crops


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
