"""The random views each self-supervised loss trains on, built from one noisy batch (B, C, H, W).

- :func:`neighbour_indices` / :func:`subsample`: Neighbor2Neighbor's sub-sampler (two adjacent pixels
  of every 2×2 cell make two half-size images with independent noise).
- :func:`blind_spot_input`: N2V2's masked input (chosen pixels, and optionally a hole around them,
  replaced by the median of the surrounding unmasked pixels).
- :func:`recorrupt`: R2R's pair of recorrupted images with independent noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Positions in a 2×2 cell, numbered 2·row + column; the 8 ordered pairs of horizontal or vertical
# neighbours (never the diagonal), as in Huang et al. (2021).
NEIGHBOUR_PAIRS = torch.tensor([[0, 1], [0, 2], [1, 0], [1, 3], [2, 0], [2, 3], [3, 1], [3, 2]])


def _cells(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H/2, W/2, 4): the four pixels of each 2×2 cell (odd edges dropped)."""
    b, c, h, w = x.shape
    x = x[..., : h - h % 2, : w - w % 2]
    h2, w2 = h // 2, w // 2
    return x.reshape(b, c, h2, 2, w2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h2, w2, 4)


def neighbour_indices(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each 2×2 cell of ``x``, the positions (0..3) of two different, adjacent pixels.

    Returns two (B, 1, H/2, W/2) integer tensors; the same choice applies to every channel.
    """
    b, _, h, w = x.shape
    choice = torch.randint(0, len(NEIGHBOUR_PAIRS), (b, 1, h // 2, w // 2), generator=generator, device=x.device)
    pairs = NEIGHBOUR_PAIRS.to(x.device)[choice]
    return pairs[..., 0], pairs[..., 1]


def subsample(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The half-size image made of pixel ``index`` (from :func:`neighbour_indices`) of each 2×2 cell."""
    cells = _cells(x)
    index = index.unsqueeze(-1).expand(*cells.shape[:-1], 1)
    return torch.gather(cells, -1, index).squeeze(-1)


def blind_spot_centres(
    shape: torch.Size | tuple[int, ...], grid: int, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """A (B, 1, H, W) bool mask with one random pixel in each ``grid``×``grid`` cell (stratified, as N2V)."""
    b, _, h, w = shape
    rows, cols = -(-h // grid), -(-w // grid)
    dy = torch.randint(0, grid, (b, rows, cols), generator=generator, device=device)
    dx = torch.randint(0, grid, (b, rows, cols), generator=generator, device=device)
    y = torch.arange(rows, device=device).view(1, rows, 1) * grid + dy
    x = torch.arange(cols, device=device).view(1, 1, cols) * grid + dx
    inside = (y < h) & (x < w)
    batch = torch.arange(b, device=device).view(b, 1, 1).expand_as(y)
    mask = torch.zeros(b, 1, h, w, dtype=torch.bool, device=device)
    mask[batch[inside], 0, y[inside], x[inside]] = True
    return mask


def blind_spot_input(
    noisy: torch.Tensor, centres: torch.Tensor, hole_radius: int = 0, window_radius: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """N2V2's network input: every pixel within ``hole_radius`` of a centre is replaced by the median of
    the pixels within ``window_radius`` of it that are in no hole (and inside the image).

    So no replaced value carries any hole pixel's own noisy value, and the network's output at a
    centre cannot depend on it (nor, with ``hole_radius`` ≥ 1, on its nearest neighbours, whose
    noise may be correlated with it, e.g. after JPEG). Returns ``(input, hole mask)``.
    """
    if window_radius <= hole_radius:
        raise ValueError(f"window_radius ({window_radius}) must exceed hole_radius ({hole_radius})")
    b, c, h, w = noisy.shape
    size = 2 * hole_radius + 1
    hole = F.max_pool2d(centres.float(), size, stride=1, padding=hole_radius) > 0 if hole_radius else centres
    where = hole[:, 0].nonzero(as_tuple=True)  # (batch, row, col) of every pixel to replace
    r = window_radius
    offsets = torch.arange(-r, r + 1, device=noisy.device)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    rows = where[1].unsqueeze(1) + oy.reshape(1, -1) + r  # in padded coordinates
    cols = where[2].unsqueeze(1) + ox.reshape(1, -1) + r
    batch = where[0].unsqueeze(1)
    padded_hole = F.pad(hole.float(), (r, r, r, r), value=1.0)[:, 0]  # outside the image counts as hole
    usable = padded_hole[batch, rows, cols] == 0
    out = noisy.clone()
    padded = F.pad(noisy.float(), (r, r, r, r))  # not detached: a leak would show in gradients
    for channel in range(c):
        values = padded[batch, channel, rows, cols]
        values = torch.where(usable, values, torch.full_like(values, float("nan")))
        median = values.nanmedian(dim=1).values
        fallback = noisy[:, channel].float().mean()
        median = torch.where(torch.isnan(median), fallback, median)
        out[where[0], channel, where[1], where[2]] = median.to(out.dtype)
    return out, hole


def recorrupt(
    noisy: torch.Tensor, sigma: torch.Tensor | float, alpha: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """R2R's pair ``(y + α·σ·z, y − σ·z/α)`` with ``z`` ~ N(0, 1) per pixel (Pang et al. 2021, D = α·I).

    For ``y = x + n`` with ``n`` ~ N(0, σ²) the two noises ``n + ασz`` and ``n − σz/α`` are uncorrelated
    (covariance σ² − σ² = 0), hence independent: one is a Noise2Noise target for the other.
    ``sigma`` is a number or a tensor broadcastable to ``noisy`` (a per-pixel noise level).
    """
    z = torch.randn(noisy.shape, generator=generator, device=noisy.device, dtype=noisy.dtype)
    return noisy + alpha * sigma * z, noisy - sigma * z / alpha
