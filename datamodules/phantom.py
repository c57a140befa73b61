"""Procedural chest-like radiographs of any size: tests, benchmarks and huge-image checks need no files."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _soft(inside: torch.Tensor, width: float) -> torch.Tensor:
    """Smooth 0→1 step of a signed distance-like field (positive inside)."""
    return torch.sigmoid(inside / width)


def _ellipse(y: torch.Tensor, x: torch.Tensor, cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
    return 1.0 - torch.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)


def chest_phantom(
    height: int = 512,
    width: int | None = None,
    seed: int = 0,
    rows_per_chunk: int = 1024,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """A seeded (height, width) float32 image in [0, 1], bright = dense, like a PA chest radiograph.

    Body outline, two lungs, heart, spine, ten pairs of ribs and smooth soft-tissue texture; the
    shapes scale with the image so any size looks alike. Computed in row chunks, so an 8192² image
    needs little more memory than its own 256 MiB.
    """
    width = height if width is None else width
    if height < 8 or width < 8:
        raise ValueError(f"phantom size must be at least 8x8, got {width}x{height}")
    generator = torch.Generator().manual_seed(seed)
    jitter = lambda scale: float((torch.rand((), generator=generator) - 0.5) * 2 * scale)  # noqa: E731
    texture = torch.rand(1, 1, 24, 24, generator=generator) - 0.5
    fine = torch.rand(1, 1, 96, 96, generator=generator) - 0.5
    rib_phase = [jitter(0.02) for _ in range(10)]
    lung_dx, lung_ry, heart_dx = jitter(0.03), 0.36 + jitter(0.03), jitter(0.04)
    edge = 2.0 / max(height, width)  # about two pixels of blur on every edge

    out = torch.empty(height, width, dtype=torch.float32, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    for start in range(0, height, rows_per_chunk):
        stop = min(height, start + rows_per_chunk)
        ys = torch.linspace(-1.0, 1.0, height, device=device)[start:stop]
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        body = _soft(_ellipse(y, x, 0.05, 0.0, 1.05, 0.86), edge)
        lungs = sum(
            _soft(_ellipse(y, x, -0.05, side * (0.36 + lung_dx), lung_ry + 0.1, 0.27), 3 * edge) for side in (-1, 1)
        )
        heart = _soft(_ellipse(y, x, 0.25, 0.12 + heart_dx, 0.3, 0.25), 6 * edge)
        spine = _soft(0.075 - x.abs(), edge) * (0.8 + 0.2 * torch.cos(y * 40.0).abs())
        ribs = torch.zeros_like(y)
        for k in range(10):
            centre = -0.55 + 0.11 * k + rib_phase[k] + 0.35 * (x.abs() - 0.35) ** 2
            ribs = ribs + _soft(0.018 - (y - centre).abs(), edge) * _soft(0.7 - x.abs(), 4 * edge)
        grid = torch.stack([x, y], dim=-1)[None]
        tex = F.grid_sample(texture.to(device), grid, mode="bicubic", align_corners=True)[0, 0]
        tex = tex + 0.5 * F.grid_sample(fine.to(device), grid, mode="bicubic", align_corners=True)[0, 0]
        image = body * (0.55 + 0.08 * tex) - 0.32 * lungs.clamp(max=1.0) * body
        image = image + 0.18 * heart * body + 0.22 * spine * body + 0.12 * ribs * body
        out[start:stop] = image.clamp(0.0, 1.0)
    return out


__all__ = ["chest_phantom"]
