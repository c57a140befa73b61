import pytest
import torch
from torch import nn

from lightning_modules.inference.tiling import count_tiles, edge_profile, sliding_window, tile_starts


@pytest.mark.parametrize("shape", [(100, 100), (37, 301), (513, 700)])
@pytest.mark.parametrize("tile,overlap,margin", [(64, 16, 0), (128, 32, 0), (512, 64, 0), (128, 64, 24), (256, 96, 36)])
def test_pointwise_predictors_are_stitched_exactly(shape, tile, overlap, margin):
    image = torch.rand(shape)
    out = sliding_window(image, lambda x: x + 1, tile=tile, overlap=overlap, margin=margin)
    assert torch.allclose(out, image + 1, atol=1e-6)
    out = sliding_window(image, lambda x: 2 * x, tile=tile, overlap=overlap, margin=margin, batch_size=3, align=1)
    assert torch.allclose(out, 2 * image, atol=1e-6)


def test_tiles_cover_the_image_with_the_requested_overlap():
    for length, tile, overlap in [(1024, 256, 64), (1000, 256, 64), (300, 256, 32), (256, 256, 64)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert count_tiles(1024, 1024, 256, 64) == len(tile_starts(1024, 256, 64, 32)) ** 2


@pytest.mark.parametrize(
    "length,tile,overlap", [(1000, 256, 64), (1536, 512, 256), (8192, 1856, 256), (2100, 1024, 96)]
)
def test_aligned_tiles_start_on_the_network_grid(length, tile, overlap):
    """Starts on multiples of 32; the last tile ends where the whole-image pass's padding ends."""
    starts = tile_starts(length, tile, overlap, align=32)
    assert starts[0] == 0 and all(s % 32 == 0 for s in starts)
    assert starts[-1] + tile == -(-length // 32) * 32
    assert all(overlap <= a + tile - b for a, b in zip(starts, starts[1:]))  # every overlap at least `overlap`


def test_window_is_zero_in_the_margin_and_neighbours_sum_to_one():
    w = edge_profile(64, 16, 0)[:, None] * edge_profile(64, 16, 0)[None, :]  # a tile with four interior borders
    assert w.min() > 0 and w[32, 32] == 1.0 and w[0, 0] < 0.01
    lead, trail = edge_profile(256, 96, 36, trail=False), edge_profile(256, 96, 36, lead=False)
    assert lead[:36].abs().max() == 0 and lead[36] > 0 and lead[60:].min() == 1
    # two tiles overlapping by exactly 96: the trailing end of one and the leading end of the next
    torch.testing.assert_close(trail[-96:] + lead[:96], torch.ones(96))
    assert edge_profile(10, 8, 2, lead=False, trail=False).eq(1).all()  # image edges keep full weight


def _phase_sensitive_net() -> nn.Module:
    """Stride-2 downsampling (so not shift-equivariant) with a receptive field of a few pixels."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Upsample(scale_factor=4, mode="nearest"),
        nn.Conv2d(8, 1, 3, padding=1),
    ).eval()


def test_tiles_on_the_network_grid_reproduce_whole_image_inference():
    """Tiles that start anywhere sample a strided network at another phase and differ from the
    whole-image output everywhere; tiles on multiples of the stride, weighted zero next to their
    inner borders, reproduce it (the receptive field, ~20 px, is within the margin)."""
    net = _phase_sensitive_net()
    image = torch.rand(700, 1000)
    with torch.no_grad():
        whole = net(nn.functional.pad(image[None, None], (0, 24, 0, 4), mode="replicate"))[0, 0, :700, :1000]
    aligned = sliding_window(image, net, tile=256, overlap=96, margin=32, batch_size=4)
    assert float((aligned - whole).abs().max()) < 1e-5
    anywhere = sliding_window(image, net, tile=256, overlap=96, margin=32, batch_size=4, align=1)
    assert float((anywhere - whole).abs().max()) > 1e-2


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
    tiled = sliding_window(image, net, tile=256, overlap=64, margin=16, batch_size=4)
    assert float((tiled - whole).abs().max()) < 1e-5  # the margin drops the zero-padded borders


def test_tile_and_image_shapes_are_kept():
    image = torch.rand(70, 45)
    assert sliding_window(image, lambda x: x, tile=(64, 32), overlap=0).shape == (70, 45)
    assert count_tiles(70, 45, (64, 32), 0) == 2 * 2
    assert count_tiles(70, 45, 1024, 256) == 1  # a tile larger than the image: one whole-image pass


def test_bad_tiling_settings_are_refused():
    with pytest.raises(ValueError, match="overlap < tile"):
        sliding_window(torch.rand(64, 64), lambda x: x, tile=32, overlap=32)
    with pytest.raises(ValueError, match=r"\(H, W\) image"):
        sliding_window(torch.rand(1, 64, 64), lambda x: x)
    with pytest.raises(ValueError, match="2 \\* tile_margin < overlap"):
        sliding_window(torch.rand(600, 600), lambda x: x, tile=256, overlap=64, margin=32)
