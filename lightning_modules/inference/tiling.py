"""Sliding-window inference that reproduces whole-image inference, for images of any size in bounded memory.

Two things make a tile's output differ from the same pixels of a whole-image pass, and both are
handled here (measured for the shipped model in ``docs/inference.md``):

- **Phase.** The network downsamples by 32 in five stride-2 steps, so it is not shift-equivariant:
  a tile that starts at an offset that is not a multiple of 32 sees a differently sampled image and
  differs from the whole-image output *everywhere*, not only near its borders (up to 0.04 for the
  shipped model). Tiles therefore start on multiples of ``align`` (32) and have sides that are
  multiples of it; the last tile of a row may reach past the image into the same edge-replicated
  padding the whole-image pass uses.
- **Border context.** Near a tile border that lies inside the image the network sees zero padding
  instead of the neighbouring pixels. The error decays with the distance from that border (the
  shipped model: up to 0.03 at 120 px, below 0.002 beyond 128 px), so each tile's weight is zero within
  ``margin`` pixels of an interior border and rises with a raised cosine over the rest of the
  overlap. Borders on the image's own edge keep full weight: the whole-image pass pads there too.

Each tile's weights are an outer product of 1-D profiles on a grid of tiles, so the normalising sum
is an outer product too and needs no image-sized buffer: memory is the output image plus one batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lightning_modules.nets.forward import run_network

ALIGN = 32  # the network's total stride (2**encoder_depth): tiles start on multiples of it


def round_up(length: int, align: int) -> int:
    """``length`` rounded up to a multiple of ``align``."""
    return -(-length // align) * align


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)``, neighbours sharing at least ``overlap``.

    Starts are multiples of ``align`` and spread as evenly as that allows; the last tile ends at
    ``length`` rounded up to a multiple of ``align`` (``tile`` must be a multiple of ``align``).

    Example:
        >>> tile_starts(1000, 512, 128, align=32)
        [0, 256, 512]
    """
    span = round_up(length, align)
    if tile >= length or tile >= span:
        return [0]
    if tile % align:
        raise ValueError(f"tile={tile} is not a multiple of align={align}")
    steps, max_step = (span - tile) // align, (tile - overlap) // align
    if max_step < 1:
        raise ValueError(f"overlap={overlap} leaves no room to step by {align} with tile={tile}")
    count = math.ceil(steps / max_step) + 1
    return [align * round(i * steps / (count - 1)) for i in range(count)]


def edge_profile(n: int, overlap: int, margin: int, lead: bool = True, trail: bool = True) -> torch.Tensor:
    """1-D tile weights of length ``n``: 0 within ``margin`` of an interior border (``lead``: the start,
    ``trail``: the end), a raised cosine over the next ``overlap - 2 * margin`` pixels, then 1.

    Opposite profiles of two neighbours overlapping by exactly ``overlap`` sum to 1; an end that is
    not interior (an image edge) keeps weight 1.

    Example:
        >>> [round(w, 2) for w in edge_profile(8, 4, 1, trail=False).tolist()]
        [0.0, 0.15, 0.85, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    w = torch.ones(n)
    ramp = overlap - 2 * margin
    if ramp <= 0:
        return w
    d = torch.arange(n, dtype=torch.float32)
    rise = torch.sin(0.5 * math.pi * ((d - margin + 0.5) / ramp).clamp(0, 1)) ** 2
    rise[: min(margin, n)] = 0.0
    if lead:
        w = w * rise
    if trail:
        w = w * rise.flip(0)
    return w


def _axis(length: int, tile: int, overlap: int, margin: int, align: int) -> tuple[list[int], list[torch.Tensor]]:
    """Tile starts along one axis and each tile's 1-D weights (clipped to the image)."""
    starts = tile_starts(length, tile, overlap, align)
    profiles = [
        edge_profile(tile, overlap, margin, lead=start > 0, trail=start + tile < length)[: length - start]
        for start in starts
    ]
    return starts, profiles


def tile_sides(tile: int | tuple[int, int], height: int, width: int, align: int = ALIGN) -> tuple[int, int]:
    """Tile height and width: rounded down to a multiple of ``align``; the image side when that is smaller."""
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile

    def side(t: int, length: int) -> int:
        return length if t >= length else min(length, max(align, t // align * align))

    return side(int(tile_h), height), side(int(tile_w), width)


def _crop(image: torch.Tensor, y: int, x: int, tile_h: int, tile_w: int) -> torch.Tensor:
    """The tile at (y, x); a tile reaching past the image is edge-replicated as the whole-image pass pads."""
    crop = image[y : y + tile_h, x : x + tile_w]
    pad_h, pad_w = tile_h - crop.shape[0], tile_w - crop.shape[1]
    if pad_h or pad_w:
        crop = F.pad(crop[None, None], (0, pad_w, 0, pad_h), mode="replicate")[0, 0]
    return crop


def check_settings(overlap: int, margin: int, batch_size: int) -> None:
    if overlap < 0 or margin < 0:
        raise ValueError(f"overlap and tile_margin must be >= 0, got overlap={overlap}, tile_margin={margin}")
    if overlap and 2 * margin >= overlap:
        raise ValueError(
            f"need 2 * tile_margin < overlap (the blend needs pixels), got tile_margin={margin}, overlap={overlap}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


@torch.no_grad()
def sliding_window(
    image: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    tile: int | tuple[int, int] = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    channels_last: bool = False,
    on_tile: Callable[[int], None] | None = None,
    margin: int = 0,
    align: int = ALIGN,
) -> torch.Tensor:
    """Apply ``predictor`` to overlapping tiles of a (H, W) image and blend the results.

    Args:
        image: (H, W) float32 on the CPU; the output is (H, W) float32 on the CPU.
        predictor: maps (B, 1, h, w) to (B, 1, h, w), e.g. a :class:`DenoisingUnet`.
        tile: tile side, or (height, width); rounded down to a multiple of ``align``. A tile at least
            as large as the image means one whole-image pass.
        overlap: minimum overlap of neighbouring tiles in pixels.
        margin: pixels next to an interior tile border that get no weight (``2 * margin < overlap``).
        batch_size: tiles per forward pass.
        device: where the predictor runs; stitching stays on the CPU.
        bf16: bfloat16 autocast on ``device``.
        channels_last: feed tiles in channels-last memory format.
        on_tile: called with the number of tiles just finished (for progress bars).
        align: tiles start on multiples of this (the network's stride; 1 turns alignment off).

    Memory: the output (4 bytes per pixel) plus one batch of tiles.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a (H, W) image, got shape {tuple(image.shape)}")
    check_settings(overlap, margin, batch_size)
    height, width = image.shape
    tile_h, tile_w = tile_sides(tile, height, width, align)
    if (tile_h < height and overlap >= tile_h) or (tile_w < width and overlap >= tile_w):
        raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={(tile_h, tile_w)}")
    rows, row_w = _axis(height, tile_h, overlap, margin, align)
    cols, col_w = _axis(width, tile_w, overlap, margin, align)
    boxes = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    out = torch.zeros(height, width, dtype=torch.float32)
    device = torch.device(device)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        batch = torch.stack([_crop(image, rows[i], cols[j], tile_h, tile_w) for i, j in chunk])[:, None].to(device)
        pred = run_network(predictor, batch, bf16, channels_last).cpu()[:, 0]
        for (i, j), tile_pred in zip(chunk, pred):
            wy, wx = row_w[i], col_w[j]
            y, x = rows[i], cols[j]
            out[y : y + len(wy), x : x + len(wx)] += tile_pred[: len(wy), : len(wx)] * (wy[:, None] * wx[None, :])
        if on_tile is not None:
            on_tile(len(chunk))
    row_sum, col_sum = _coverage(height, rows, row_w), _coverage(width, cols, col_w)
    for start in range(0, height, 1024):  # in row chunks: no image-sized temporary
        out[start : start + 1024].div_(row_sum[start : start + 1024, None] * col_sum[None, :])
    return out


def _coverage(length: int, starts: list[int], profiles: list[torch.Tensor]) -> torch.Tensor:
    """Sum over tiles of their 1-D weights at each position along one axis."""
    total = torch.zeros(length)
    for start, weights in zip(starts, profiles):
        total[start : start + len(weights)] += weights
    return total


def count_tiles(height: int, width: int, tile: int | tuple[int, int], overlap: int, align: int = ALIGN) -> int:
    """How many tiles :func:`sliding_window` runs on a (height, width) image."""
    tile_h, tile_w = tile_sides(tile, height, width, align)
    return len(tile_starts(height, tile_h, overlap, align)) * len(tile_starts(width, tile_w, overlap, align))
