"""The tiling plan: the whole image where it fits the memory budget, else the fewest network pixels."""

import pytest

from lightning_modules.inference.backends import InferencePath
from lightning_modules.inference.tile_plan import (
    auto_or_int,
    margin_for,
    pixel_budget,
    plan_for,
    plan_tiles,
    smallest_side,
)
from lightning_modules.inference.tiling import tile_starts

BF16 = InferencePath("fast", bf16=True, channels_last=True, fused=True)
FP32 = InferencePath("fast", bf16=False, channels_last=True, fused=True)


def test_whole_image_where_it_fits():
    plan = plan_for(2048, 2048, BF16, 2.0, 384)
    assert plan.tile == (2048, 2048) and plan.tiles == 1 and plan.batch_size == 1
    assert plan.describe(2048, 2048) == "whole image (2048×2048)"
    assert plan_for(2048, 2048, FP32, 2.0, 384).tiles == 2  # fp32 needs more memory per pixel
    assert plan_for(2048, 2048, FP32, 2.5, 384).tiles == 1
    assert plan_for(3000, 2500, BF16, 2.0, 384).tiles == 2 and plan_for(3000, 2500, BF16, 3.0, 384).tiles == 1
    assert plan_tiles(100, 70, 10**6, 384).tile == (100, 70)


@pytest.mark.parametrize("path", [BF16, FP32])
@pytest.mark.parametrize("shape", [(8192, 8192), (3000, 2500), (2048, 8192)])
def test_tiles_fit_the_budget_and_are_large(path, shape):
    height, width = shape
    budget = pixel_budget(height, width, path, 2.0)
    plan = plan_tiles(height, width, budget, 384)
    tile_h, tile_w = plan.tile
    assert tile_h * tile_w <= budget and min(plan.tile) >= 1024  # large tiles: small seams
    rows, cols = tile_starts(height, tile_h, 384, 32), tile_starts(width, tile_w, 384, 32)
    assert plan.tiles == len(rows) * len(cols)
    assert plan.network_mpix * 1e6 < 2.1 * height * width  # at most 1.1× more pixels, at 8192²
    if max(shape) < 8192:  # below the memory-bound extreme: fewer pixels than the old 512/128 tiles
        assert plan.network_mpix < plan_tiles(height, width, budget, 128, tile=512).network_mpix


def test_8192_image_fits_2gb_by_the_estimates():
    for path in (BF16, FP32):
        plan = plan_for(8192, 8192, path, 2.0, 384)
        assert plan.tiles > 1 and plan.tile[0] * plan.tile[1] <= pixel_budget(8192, 8192, path, 2.0)


def test_smallest_side_and_fixed_settings():
    assert smallest_side(2048, 1, 384) == 2048
    side = smallest_side(2048, 2, 384)
    assert side % 32 == 0 and len(tile_starts(2048, side, 384, 32)) == 2
    assert len(tile_starts(2048, side - 32, 384, 32)) > 2  # the smallest that does it
    plan = plan_tiles(2048, 2048, 4 * 512 * 512, 128, tile=500)
    assert plan.tile == (480, 480) and plan.batch_size == 4  # rounded to the grid; as many as fit the budget
    assert plan_tiles(2048, 2048, 4 * 512 * 512, 128, tile=512, batch_size=2).batch_size == 2


def test_config_values():
    assert auto_or_int("auto", "tile") is None and auto_or_int(None, "tile") is None and auto_or_int(512, "tile") == 512
    for bad in ("big", 0, -3, 1.5):
        with pytest.raises(ValueError, match="tile="):
            auto_or_int(bad, "tile")
    assert margin_for("auto", 384) == 128 and margin_for(10, 256) == 10


def test_the_networks_edge_margin_counts_against_the_budget():
    # 100×70 with 32 px replicated on every side runs as 192×160 (multiples of 32)
    assert plan_tiles(100, 70, 10**6, 384, edge_margin=32).network_mpix == pytest.approx(192 * 160 / 1e6)
    bare = plan_tiles(2048, 2048, 2048 * 2048, 384)
    widened = plan_tiles(2048, 2048, 2048 * 2048, 384, edge_margin=32)
    assert bare.tiles == 1 and widened.tiles > 1  # the whole image fits the budget, its widened pass does not
    height, width = widened.tile
    assert (height + 64) * (width + 64) <= 2048 * 2048
