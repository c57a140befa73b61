"""Running a local part of a network on row stripes of its input, to bound that part's memory.

A stack of 3×3 convolutions only looks a few rows up and down, so computing it on horizontal stripes
that are widened by a ``halo`` of extra rows (cut off again afterwards) gives the same output as one
pass over the whole input, while holding only one stripe's activations at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

STRIPE_PIXELS = 1 << 20  # full-resolution pixels per stripe (about 1 Mpix: smaller stripes ran slower), before the halo
MIN_ROWS = 128  # very wide inputs still get stripes of this many rows (the halo costs at most 25 % then)


def stripe_rows(width: int, multiple: int = 32) -> int:
    """Rows per stripe for an input ``width`` pixels wide: about :data:`STRIPE_PIXELS` pixels, a multiple of ``multiple``.

    Example:
        >>> stripe_rows(2048), stripe_rows(100_000)
        (512, 128)
    """
    return max(MIN_ROWS, STRIPE_PIXELS // max(width, 1) // multiple * multiple)


def by_row_stripes(
    fn: Callable[..., torch.Tensor], tensors: list[torch.Tensor], height: int, rows: int, halo: int
) -> torch.Tensor:
    """``fn(*tensors)`` computed on row stripes and concatenated along the rows.

    ``tensors`` are (B, C, h, W') at resolutions ``height / h`` (each must divide ``rows`` and ``halo``);
    ``fn`` returns (B, C', height, W) for them. Equal to one call where ``fn``'s receptive field spans
    fewer than ``halo`` rows on each side.

    Example:
        >>> x = torch.rand(1, 1, 64, 8)
        >>> blur = lambda t: torch.nn.functional.avg_pool2d(t, 3, stride=1, padding=1)
        >>> torch.allclose(by_row_stripes(blur, [x], 64, rows=16, halo=4), blur(x))
        True
    """
    scales = [height // t.shape[-2] for t in tensors]
    if any(rows % s or halo % s for s in scales):
        raise ValueError(f"rows={rows} and halo={halo} must be multiples of every input's scale {scales}")
    if rows >= height:
        return fn(*tensors)
    parts = []
    for first in range(0, height, rows):
        last = min(height, first + rows)
        top, bottom = max(0, first - halo), min(height, last + halo)
        crops = [t[..., top // s : bottom // s, :] for t, s in zip(tensors, scales)]
        parts.append(fn(*crops)[..., first - top : last - top, :])
    return torch.cat(parts, dim=-2)
