"""How large the tiles are: the whole image where it fits the memory budget, else the fewest network pixels.

The network's working memory grows with the pixels of one forward pass (measured, per inference
path: :data:`PASS_MEMORY`), and the process also holds the interpreter, torch and the model
(:data:`PROCESS_MB`) and the input and output images (:data:`IMAGE_BYTES_PER_PIXEL`). What a
``memory_gb`` budget leaves after those two is what one forward pass may use:

- the whole image in one pass where it fits (no seams, no pixel computed twice);
- else the grid of tiles that makes the network compute the fewest pixels, each tile as large as
  the budget allows (tiles sized to the image: 2048×4096 becomes two 2048×2208 tiles, not 512² ones);
- several tiles per forward pass only where they fit together (``batch_size=auto``).

Larger tiles also reproduce whole-image inference more closely (``docs/inference.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.inference.backends import InferencePath
from lightning_modules.inference.tiling import ALIGN, tile_starts

# Peak working memory of one forward pass, (MB, MB per Mpix of input): an upper bound of the
# process's peak RSS less its size before the pass (CPU, the shipped model, docs/inference.md).
# FastUnet's last two decoder blocks run in stripes of about 1 Mpix (a fixed part), the rest grows with
# the pixels; the other paths hold every activation.
PASS_MEMORY = {
    ("fast", True): (400, 150),  # FastUnet, bf16: measured 493 MB at 1.05 Mpix, 639 at 2.4, 1034 at 4.2, 1263 at 9.4
    ("fast", False): (300, 230),  # FastUnet, fp32: 509 MB at 1.05 Mpix, 837 at 2.4, 1247 at 4.2, 2008 at 9.4
    ("onnxruntime", False): (250, 415),  # 433 MB at 1.05 Mpix
    ("torch", True): (250, 310),  # eager DenoisingUnet, bf16 autocast: 323 MB at 1.05 Mpix
    ("torch", False): (250, 600),  # eager, fp32 (NCHW or channels_last): 620 MB at 1.05 Mpix
}
DEFAULT_PASS_MEMORY = (250, 600)  # paths not measured (compile): as eager fp32
PROCESS_MB = 600  # python + torch + the model (561 MB measured on the CPU once the reader's temporaries are freed)
IMAGE_BYTES_PER_PIXEL = 8  # the float32 input and the float32 output of sliding_window
PLANNED_SHARE = 0.9  # plan for 90 % of memory_gb: freed blocks the allocator keeps for reuse add up to ~8 %
RELEASE_SHARE = 0.85  # and hand them back between passes once the process is resident above 85 %
MIN_WORKING_MB = 100  # a budget too small for the image still runs, on tiles of 0.2-0.7 Mpix


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


def release_limit_mb(memory_gb: float) -> float:
    """Resident memory above which tiling hands freed memory back between passes (85 % of ``memory_gb``)."""
    return RELEASE_SHARE * 1000 * memory_gb


def pass_memory(path: InferencePath) -> tuple[float, float]:
    """(MB, MB per Mpix) of one forward pass along ``path``."""
    return PASS_MEMORY.get((path.backend, path.bf16), DEFAULT_PASS_MEMORY)


def pixel_budget(height: int, width: int, path: InferencePath, memory_gb: float) -> int:
    """Pixels one forward pass may hold so that the process stays within ``memory_gb`` on this image."""
    fixed_mb, per_mpix = pass_memory(path)
    image_mb = IMAGE_BYTES_PER_PIXEL * height * width / 1e6
    working_mb = PLANNED_SHARE * 1000 * memory_gb - PROCESS_MB - image_mb - fixed_mb
    return int(max(working_mb, MIN_WORKING_MB) / per_mpix * 1e6)


def _padded(length: int, align: int) -> int:
    return -(-length // align) * align


def smallest_side(length: int, count: int, overlap: int, align: int = ALIGN) -> int | None:
    """The smallest tile side (a multiple of ``align``) that covers ``length`` with at most ``count`` tiles;
    ``None`` when ``count`` tiles of more than ``overlap`` cannot be placed."""
    span = _padded(length, align)
    if count == 1:
        return length
    side = max(_padded(-(-(span + (count - 1) * overlap) // count), align), overlap + align)
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
    edge_margin: int = 0,
) -> TilePlan:
    """The tiling of a (height, width) image for ``max_pixels`` per forward pass.

    ``tile`` fixes the tile side (else: the whole image if it fits, else the fewest network pixels);
    ``batch_size`` fixes the tiles per pass (else: as many as fit ``max_pixels``, at least one).
    ``edge_margin``: pixels the network adds on every side of each tile (they count against ``max_pixels``).
    """

    def area(tile_h: int, tile_w: int) -> int:  # what one tile costs the network, padding included
        return _padded(tile_h + 2 * edge_margin, align) * _padded(tile_w + 2 * edge_margin, align)

    if tile is not None:
        tile_h, tile_w = min(height, max(align, tile // align * align)), min(width, max(align, tile // align * align))
        best = (tile_h, tile_w)
    elif area(height, width) <= max_pixels:
        best = (height, width)
    else:
        best, cost = None, None
        for rows in range(1, _padded(height, align) // align + 1):
            tile_h = smallest_side(height, rows, overlap, align)
            if tile_h is None:
                break
            for cols in range(1, _padded(width, align) // align + 1):
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


def margin_for(margin: object, overlap: int) -> int:
    """``margin=auto`` is a third of the overlap (128 px at 384: both tiles' weights ramp over the middle third)."""
    if margin is None or str(margin) == "auto":
        return overlap // 3
    try:
        return int(margin)
    except (TypeError, ValueError) as err:
        raise ValueError(f"margin={margin!r}: use auto or a whole number of pixels") from err


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
        edge_margin=path.edge_margin,
    )
