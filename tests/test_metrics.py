import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lightning_modules.nets.losses import LOSSES, build_loss
from lightning_modules.nets.metrics import image_metrics


def test_metrics_match_scikit_image_per_image():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 1, 61, 53)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    ours = image_metrics(torch.from_numpy(noisy), torch.from_numpy(clean))
    for i in range(3):
        ref_psnr = peak_signal_noise_ratio(clean[i, 0], noisy[i, 0], data_range=1.0)
        ref_ssim = structural_similarity(
            clean[i, 0], noisy[i, 0], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert abs(float(ours["psnr"][i]) - ref_psnr) < 0.01
        assert abs(float(ours["ssim"][i]) - ref_ssim) < 0.01
        assert float(ours["mse"][i]) == pytest.approx(float(((clean[i] - noisy[i]) ** 2).mean()), rel=1e-5)


def test_metrics_inside_bf16_autocast_equal_fp32():
    """Lightning validates under bf16 autocast; SSIM there must still be the fp32 value."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = (0.5 + 0.02 * torch.sin(12 * x) * torch.cos(9 * y))[None, None]  # a flat, low-contrast region
    pred = clean + 0.005 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    reference = image_metrics(pred, clean)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = image_metrics(pred, clean)
    for name in reference:
        assert torch.allclose(inside[name], reference[name], rtol=1e-5), name


def test_prediction_is_clamped_to_the_data_range():
    target = torch.full((1, 1, 16, 16), 1.0)
    assert float(image_metrics(target + 0.5, target)["mse"][0]) == 0.0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_zero_at_target_and_positive_elsewhere(name):
    loss = build_loss(name)
    target = torch.rand(2, 1, 32, 32)
    assert float(loss(target, target)) < 2e-3  # Charbonnier's floor is eps
    assert float(loss(target.flip(-1), target)) > float(loss(target, target))


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="loss.name='huber' is unknown"):
        build_loss("huber")
