import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lightning_modules.losses import LOSSES, build_loss
from lightning_modules.metrics import image_metrics


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
