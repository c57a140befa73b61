import pytest
import torch

from datamodules.patches import random_aligned_crop
from datamodules.phantom import chest_phantom


def test_phantom_is_seeded_sized_and_in_range():
    a, b, c = chest_phantom(96, 80, seed=3), chest_phantom(96, 80, seed=3), chest_phantom(96, 80, seed=4)
    assert a.shape == (96, 80) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # Anatomy, not noise: body brighter than the corners, lungs darker than the spine.
    assert a[48, 40] > a[2, 2] + 0.2


def test_phantom_chunking_does_not_change_the_image():
    assert torch.allclose(chest_phantom(130, seed=1, rows_per_chunk=17), chest_phantom(130, seed=1), atol=1e-6)


def test_background_patches_are_redrawn():
    clean = torch.zeros(1, 64, 64)
    clean[..., :, 48:] = 0.8  # only a quarter of the image is anatomy
    torch.manual_seed(0)
    plain = [float((random_aligned_crop([clean], 16)[0] > 0.05).float().mean()) for _ in range(200)]
    picky = [float((random_aligned_crop([clean], 16, min_foreground=0.5)[0] > 0.05).float().mean()) for _ in range(200)]
    # One draw has >= 50 % anatomy with p = 9/49 (18 %); ten tries raise that to 1 - 0.82**10 (86 %).
    assert sum(f >= 0.5 for f in plain) < 60
    assert sum(f >= 0.5 for f in picky) > 150


def test_loader_throughput_counts_batches(paired_root):
    from datamodules.datamodule import PairedDataModule
    from datamodules.throughput import loader_throughput

    dm = PairedDataModule(root=str(paired_root), batch_size=2, patch_size=32, num_workers=0)
    result = loader_throughput(dm, batches=5, warmup_batches=1)
    assert result["batches"] == 5 and result["patches_per_s"] > 0
    assert result["mpix_per_s"] == pytest.approx(result["patches_per_s"] * 32 * 32 / 1e6, rel=1e-6)
