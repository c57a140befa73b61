import pytest
import torch
from torch import nn

from lightning_modules.inference.tiling import blend_window, count_tiles, sliding_window, tile_starts


@pytest.mark.parametrize("shape", [(100, 100), (37, 301), (513, 700)])
@pytest.mark.parametrize("tile,overlap", [(64, 16), (128, 32), (512, 64)])
def test_pointwise_predictors_are_stitched_exactly(shape, tile, overlap):
    image = torch.rand(shape)
    assert torch.allclose(sliding_window(image, lambda x: x + 1, tile=tile, overlap=overlap), image + 1, atol=1e-6)
    assert torch.allclose(
        sliding_window(image, lambda x: 2 * x, tile=tile, overlap=overlap, batch_size=3), 2 * image, atol=1e-6
    )


def test_tiles_cover_the_image_with_the_requested_overlap():
    for length, tile, overlap in [(1024, 256, 64), (1000, 256, 64), (300, 256, 32), (256, 256, 64)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert count_tiles(1024, 1024, 256, 64) == len(tile_starts(1024, 256, 64)) ** 2


def test_window_is_positive_and_flat_in_the_middle():
    w = blend_window(64, 64, 16)
    assert w.min() > 0 and w[32, 32] == 1.0 and w[0, 0] < 0.01


def test_no_seams_on_1024_image():
    """A local network (receptive field 7 px < overlap): tiled equals whole-image inference."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 1, 3, padding=1),
    ).eval()
    image = torch.rand(1024, 1024)
    with torch.no_grad():
        whole = net(image[None, None])[0, 0]
    tiled = sliding_window(image, net, tile=256, overlap=64, batch_size=4)
    assert float((tiled - whole).abs().max()) < 1e-3


def test_bad_tiling_settings_are_refused():
    with pytest.raises(ValueError, match="overlap < tile"):
        sliding_window(torch.rand(64, 64), lambda x: x, tile=32, overlap=32)
    with pytest.raises(ValueError, match=r"\(H, W\) image"):
        sliding_window(torch.rand(1, 64, 64), lambda x: x)
