"""The tiling plan: the whole image where it fits the memory budget, else the fewest network pixels;
the memory model counted on the network itself."""

import pytest
import torch

from lightning_modules.inference.backends import InferencePath, activation_bytes
from lightning_modules.inference.tile_plan import (
    auto_or_int,
    pixel_budget,
    plan_for,
    plan_tiles,
    smallest_side,
    tile_margin_for,
)
from lightning_modules.inference.tiling import tile_starts
from lightning_modules.nets.unet import DenoisingUnet

BYTES = 386.0  # activation_bytes of the shipped model (ResNet-18 UNet, fp32): the same for every image size
ONNX = InferencePath("onnxruntime", bf16=False, channels_last=False, bytes_per_pixel=BYTES)
TORCH = InferencePath("torch", bf16=False, channels_last=True, bytes_per_pixel=BYTES)


def test_the_memory_model_is_counted_per_pixel_on_the_network():
    torch.manual_seed(0)
    net = DenoisingUnet(residual=True, norm="group", eval_margin=16).eval()
    small, large = (activation_bytes(net, "cpu", False, True, 16, side) for side in (64, 128))
    assert 100 < small < 2000 and large == pytest.approx(small, rel=0.1)  # grows with the pixels alone
    assert plan_for(2048, 2048, TORCH, 2.0, 384) == plan_for(2048, 2048, ONNX, 2.0, 384)
    with pytest.raises(ValueError, match="bytes_per_pixel"):
        pixel_budget(512, 512, InferencePath("torch", False, True), 2.0)


def test_whole_image_where_it_fits():
    plan = plan_for(1024, 1024, ONNX, 2.0, 384)
    assert plan.tile == (1024, 1024) and plan.tiles == 1 and plan.batch_size == 1
    assert plan.describe(1024, 1024) == "whole image (1024×1024)"
    assert plan_for(2048, 2048, ONNX, 2.0, 384).tiles == 2  # 4.2 Mpix: more than 2 GB holds in one pass
    assert plan_for(2048, 2048, ONNX, 4.0, 384).tiles == 1
    assert plan_for(3000, 2500, ONNX, 4.0, 384).tiles == 2 and plan_for(3000, 2500, ONNX, 6.0, 384).tiles == 1
    assert plan_tiles(100, 70, 10**6, 384).tile == (100, 70)


@pytest.mark.parametrize("shape", [(8192, 8192), (3000, 2500), (2048, 8192)])
def test_tiles_fit_the_budget_and_are_large(shape):
    height, width = shape
    budget = pixel_budget(height, width, ONNX, 2.0)
    plan = plan_tiles(height, width, budget, 384)
    tile_h, tile_w = plan.tile
    assert tile_h * tile_w <= budget and min(plan.tile) >= 1024  # large tiles: small seams
    rows, cols = tile_starts(height, tile_h, 384, 32), tile_starts(width, tile_w, 384, 32)
    assert plan.tiles == len(rows) * len(cols)
    assert plan.network_mpix * 1e6 < 2.3 * height * width  # the memory-bound extreme, 8192², at most 2.3×
    if max(shape) < 8192:  # below it: fewer pixels than the old 512/128 tiles
        assert plan.network_mpix < plan_tiles(height, width, budget, 128, tile=512).network_mpix


def test_8192_image_fits_2gb_by_the_estimates():
    plan = plan_for(8192, 8192, ONNX, 2.0, 384)
    assert plan.tiles > 1 and plan.tile[0] * plan.tile[1] <= pixel_budget(8192, 8192, ONNX, 2.0)


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
    assert tile_margin_for("auto", 384) == 128 and tile_margin_for(10, 256) == 10


def test_the_networks_eval_margin_counts_against_the_budget():
    # 100×70 with 32 px replicated on every side runs as 192×160 (multiples of 32)
    assert plan_tiles(100, 70, 10**6, 384, eval_margin=32).network_mpix == pytest.approx(192 * 160 / 1e6)
    bare = plan_tiles(2048, 2048, 2048 * 2048, 384)
    widened = plan_tiles(2048, 2048, 2048 * 2048, 384, eval_margin=32)
    assert bare.tiles == 1 and widened.tiles > 1  # the whole image fits the budget, its widened pass does not
    height, width = widened.tile
    assert (height + 64) * (width + 64) <= 2048 * 2048
