"""How large the tiles are: the whole image where it fits the memory budget, else the fewest network pixels.

A forward pass holds :attr:`InferencePath.bytes_per_pixel` bytes of activations per pixel it computes
(counted on the network itself: :func:`~lightning_modules.inference.backends.activation_bytes`); the
process also holds the interpreter, torch and the model (:data:`PROCESS_MB`) and the input and output
images (:data:`IMAGE_BYTES_PER_PIXEL`). What a ``memory_gb`` budget leaves after those is what one
forward pass may use:

- the whole image in one pass where it fits (no seams, no pixel computed twice);
- else the grid of tiles that makes the network compute the fewest pixels, each tile as large as
  the budget allows (tiles sized to the image: 2048×4096 becomes two 2048×2208 tiles, not 512² ones);
- several tiles per forward pass only where they fit together (``batch_size=auto``).

Larger tiles also reproduce whole-image inference more closely (``docs/inference.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.inference.backends import InferencePath
from lightning_modules.inference.tiling import ALIGN, round_up, tile_sides, tile_starts

PROCESS_MB = 600  # python + torch + the model + the backend's own buffers, outside the activations
IMAGE_BYTES_PER_PIXEL = 8  # the float32 input and the float32 output of sliding_window
PLANNED_SHARE = 0.9  # plan for 90 % of memory_gb
SLACK = 1.2  # resident memory above the live activations: allocator free lists, oneDNN/ORT scratch buffers
MIN_WORKING_MB = 100  # a budget too small for the image still runs, on small tiles


@dataclass(frozen=True)
class TilePlan:
    """``tile``: (height, width); ``tiles``: how many; ``batch_size``: tiles per forward pass;
    ``network_mpix``: the pixels the network runs on in all (image pixels, counted again where tiles overlap)."""

    tile: tuple[int, int]
    tiles: int
    batch_size: int
    network_mpix: float

    def describe(self, height: int, width: int) -> str:
        if self.tiles == 1:
            return f"whole image ({height}×{width})"
        ratio = self.network_mpix * 1e6 / (height * width)
        return (
            f"{self.tiles} tiles of {self.tile[0]}×{self.tile[1]}, {self.batch_size} per pass, {ratio:.2f}× the pixels"
        )


def pixel_budget(height: int, width: int, path: InferencePath, memory_gb: float) -> int:
    """Pixels one forward pass may hold so that the process stays within ``memory_gb`` on this image."""
    if path.bytes_per_pixel <= 0:
        raise ValueError("the path's bytes_per_pixel is unknown: take the path load_predictor returns")
    image_mb = IMAGE_BYTES_PER_PIXEL * height * width / 1e6
    working_mb = PLANNED_SHARE * 1000 * memory_gb - PROCESS_MB - image_mb
    return int(max(working_mb, MIN_WORKING_MB) * 1e6 / (SLACK * path.bytes_per_pixel))


def smallest_side(length: int, count: int, overlap: int, align: int = ALIGN) -> int | None:
    """The smallest tile side (a multiple of ``align``) that covers ``length`` with at most ``count`` tiles;
    ``None`` when ``count`` tiles of more than ``overlap`` cannot be placed."""
    span = round_up(length, align)
    if count == 1:
        return length
    side = max(round_up(-(-(span + (count - 1) * overlap) // count), align), overlap + align)
    while side < span:
        if len(tile_starts(length, side, overlap, align)) <= count:
            return side
        side += align
    return None


def plan_tiles(
    height: int,
    width: int,
    max_pixels: int,
    overlap: int,
    tile: int | None = None,
    batch_size: int | None = None,
    align: int = ALIGN,
    eval_margin: int = 0,
) -> TilePlan:
    """The tiling of a (height, width) image for ``max_pixels`` per forward pass.

    ``tile`` fixes the tile side (else: the whole image if it fits, else the fewest network pixels);
    ``batch_size`` fixes the tiles per pass (else: as many as fit ``max_pixels``, at least one).
    ``eval_margin``: pixels the network adds on every side of each tile (they count against ``max_pixels``).
    """

    def area(tile_h: int, tile_w: int) -> int:  # what one tile costs the network, padding included
        return round_up(tile_h + 2 * eval_margin, align) * round_up(tile_w + 2 * eval_margin, align)

    if tile is not None:
        best = tile_sides(tile, height, width, align)
    elif area(height, width) <= max_pixels:
        best = (height, width)
    else:
        best, cost = None, None
        for rows in range(1, round_up(height, align) // align + 1):
            tile_h = smallest_side(height, rows, overlap, align)
            if tile_h is None:
                break
            for cols in range(1, round_up(width, align) // align + 1):
                tile_w = smallest_side(width, cols, overlap, align)
                if tile_w is None:
                    break
                if area(tile_h, tile_w) > max_pixels:
                    continue  # more columns make narrower tiles: keep looking
                total = rows * cols * tile_h * tile_w
                if cost is None or total < cost:
                    best, cost = (tile_h, tile_w), total
                break  # the fewest columns that fit this row count is the cheapest
        if best is None:  # not even the narrowest tiles fit: the smallest square tile that steps
            side = overlap + align - overlap % align
            best = (min(height, side), min(width, side))
    tile_h, tile_w = best
    count = len(tile_starts(height, tile_h, overlap, align)) * len(tile_starts(width, tile_w, overlap, align))
    tile_area = area(tile_h, tile_w)
    per_pass = batch_size if batch_size is not None else max(1, max_pixels // tile_area)
    return TilePlan(best, count, max(1, min(per_pass, count)), count * tile_area / 1e6)


def auto_or_int(value: object, key: str) -> int | None:
    """A config value that is ``auto`` (or null) or a positive integer; the error names ``key``."""
    if value is None or str(value) == "auto":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise ValueError(f"{key}={value!r}: use auto or a positive whole number")
    return number


def tile_margin_for(margin: object, overlap: int) -> int:
    """``tile_margin=auto`` is a third of the overlap (128 px at 384: both tiles' weights ramp over the middle third)."""
    if margin is None or str(margin) == "auto":
        return overlap // 3
    try:
        return int(margin)
    except (TypeError, ValueError) as err:
        raise ValueError(f"tile_margin={margin!r}: use auto or a whole number of pixels") from err


def plan_for(
    height: int,
    width: int,
    path: InferencePath,
    memory_gb: float,
    overlap: int,
    tile: object = "auto",
    batch_size: object = "auto",
) -> TilePlan:
    """:func:`plan_tiles` for ``path`` under ``memory_gb``, from config values (``auto`` or numbers)."""
    return plan_tiles(
        height,
        width,
        pixel_budget(height, width, path, memory_gb),
        overlap,
        tile=auto_or_int(tile, "tile"),
        batch_size=auto_or_int(batch_size, "batch_size"),
        eval_margin=path.eval_margin,
    )
