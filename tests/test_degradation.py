import torch

from datamodules.noise import AffineGaussianNoiseModel


def test_same_seed_same_output_and_different_seed_differs():
    clean = torch.rand(1, 37, 31)
    model = AffineGaussianNoiseModel()
    a = model.simulate(clean, generator=torch.Generator().manual_seed(3))
    b = model.simulate(clean, generator=torch.Generator().manual_seed(3))
    c = model.simulate(clean, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flat_field_statistics_match_the_model():
    model = AffineGaussianNoiseModel(gain=0.5, offset=0.1, sigma=0.05, quantize_bits=None)
    noisy = model.simulate(torch.full((1, 256, 256), 0.6), generator=torch.Generator().manual_seed(0))
    assert abs(float(noisy.mean()) - 0.4) < 2e-3
    assert abs(float(noisy.std()) - 0.05) < 2e-3


def test_output_is_clipped_and_quantised_to_8_bits():
    noisy = AffineGaussianNoiseModel(sigma=0.5).simulate(
        torch.rand(1, 64, 64), generator=torch.Generator().manual_seed(0)
    )
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert torch.allclose(noisy * 255, torch.round(noisy * 255), atol=1e-4)
