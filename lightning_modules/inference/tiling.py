"""Sliding-window inference with smooth weighted blending, for images of any size in bounded memory."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lightning_modules.inference.allocator import release_freed_memory
from lightning_modules.nets.forward import run_network


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    # Spread the tiles evenly so every overlap is at least `overlap` and the last tile ends at `length`.
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def ramp(n: int, overlap: int) -> torch.Tensor:
    """1-D weights of length ``n``: 1 in the middle, raised-cosine ramps over ``overlap`` at both ends.

    Ramps never reach zero, so pixels covered by a single tile (image borders) keep that tile's value.
    """
    w = torch.ones(n)
    r = min(overlap, n // 2)
    if r > 0:
        edge = torch.sin(0.5 * math.pi * (torch.arange(r) + 0.5) / r) ** 2
        w[:r] = edge
        w[n - r :] = edge.flip(0)
    return w


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """(height, width) tile weights: the outer product of the two 1-D ramps."""
    return ramp(height, overlap)[:, None] * ramp(width, overlap)[None, :]


def _coverage(length: int, tile: int, overlap: int) -> torch.Tensor:
    """Sum over tiles of the 1-D ramps at each position along one axis."""
    total = torch.zeros(length)
    weights = ramp(tile, overlap)
    for start in tile_starts(length, tile, overlap):
        total[start : start + tile] += weights
    return total


@torch.no_grad()
def sliding_window(
    image: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    channels_last: bool = False,
    on_tile: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Apply ``predictor`` to overlapping tiles of a (H, W) image and blend the results.

    Args:
        image: (H, W) float32 on the CPU; the output is (H, W) float32 on the CPU.
        predictor: maps (B, 1, h, w) to (B, 1, h, w), e.g. a :class:`DenoisingUnet`.
        tile, overlap: tile side and minimum overlap in pixels (``overlap < tile``).
        batch_size: tiles per forward pass.
        device: where the predictor runs; stitching stays on the CPU.
        bf16: bfloat16 autocast on ``device``.
        channels_last: feed tiles in channels-last memory format.
        on_tile: called with the number of tiles just finished (for progress bars).

    Memory: the output (4 bytes per pixel) plus one batch of tiles. The tiles form a grid and
    each tile's weights are an outer product, so the sum of weights is ``outer(rows, cols)`` and
    needs no image-sized buffer.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a (H, W) image, got shape {tuple(image.shape)}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    height, width = image.shape
    tile_h, tile_w = min(tile, height), min(tile, width)
    weights = blend_window(tile_h, tile_w, overlap)
    out = torch.zeros(height, width, dtype=torch.float32)
    boxes = [(y, x) for y in tile_starts(height, tile_h, overlap) for x in tile_starts(width, tile_w, overlap)]
    device = torch.device(device)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        batch = torch.stack([image[y : y + tile_h, x : x + tile_w] for y, x in chunk])[:, None].to(device)
        pred = run_network(predictor, batch, bf16, channels_last).cpu()[:, 0]
        for (y, x), tile_pred in zip(chunk, pred):
            out[y : y + tile_h, x : x + tile_w] += tile_pred * weights
        if on_tile is not None:
            on_tile(len(chunk))
    release_freed_memory()  # the tiles' working memory, kept for reuse between batches, goes back now
    rows, cols = _coverage(height, tile_h, overlap), _coverage(width, tile_w, overlap)
    for start in range(0, height, 1024):  # in row chunks: no image-sized temporary
        out[start : start + 1024].div_(rows[start : start + 1024, None] * cols[None, :])
    return out


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, min(tile, height), overlap)) * len(tile_starts(width, min(tile, width), overlap))
