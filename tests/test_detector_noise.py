"""The SharpXR protocol's Poisson–Gaussian model and the blind detector family: statistics, not just shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from datamodules.detector_noise import DetectorNoiseFamily, PoissonGaussianNoiseModel, gaussian_blur
from datamodules.noise import PhysicalNoiseModel, quantize
from lightning_modules.classical.stabilisers import ScaledCountsAnscombe, stabiliser_for
from lightning_modules.report.inputs import noise_model


def _flat(value: float, size: int = 256) -> torch.Tensor:
    return torch.full((1, size, size), value)


def test_poisson_gaussian_has_the_variance_of_its_photons_and_read_noise():
    eta, sigma, x = 100.0, 10 / 255, 0.4
    noisy = PoissonGaussianNoiseModel(eta, sigma, quantize_bits=None).simulate(
        _flat(x), 1.0, torch.Generator().manual_seed(0)
    )
    assert float(noisy.mean()) == pytest.approx(x, abs=2e-3)
    assert float(noisy.var()) == pytest.approx(x / eta + sigma**2, rel=0.03)
    half_dose = PoissonGaussianNoiseModel(eta, 0.0, None).simulate(_flat(x), 0.5, torch.Generator().manual_seed(0))
    assert float(half_dose.var()) == pytest.approx(x / (eta * 0.5), rel=0.03)  # half the photons


def test_protocol_defaults_draw_per_image_and_store_8_bits():
    model = PoissonGaussianNoiseModel()
    generator = torch.Generator().manual_seed(1)
    variances = [float(model.simulate(_flat(0.5, 64), 1.0, generator).var()) for _ in range(20)]
    assert max(variances) > 2 * min(variances)  # η and σ change from image to image
    noisy = model.simulate(_flat(0.5, 64), 1.0, generator)
    assert torch.equal(noisy, torch.round(noisy * 255) / 255) and 0.0 <= float(noisy.min()) <= float(noisy.max()) <= 1


def test_stabiliser_makes_fixed_poisson_gaussian_noise_unit_variance():
    eta, sigma = 200.0, 8 / 255
    model = PoissonGaussianNoiseModel(eta, sigma, quantize_bits=None)
    stabiliser = stabiliser_for(model, 1.0)
    assert isinstance(stabiliser, ScaledCountsAnscombe) and stabiliser.scale == eta
    for x in (0.2, 0.7):
        noisy = model.simulate(_flat(x), 1.0, torch.Generator().manual_seed(2)).numpy()
        assert float(np.var(stabiliser.forward(noisy))) == pytest.approx(1.0, rel=0.06)
    clean = _flat(0.5).numpy()
    assert np.allclose(stabiliser.inverse(stabiliser.forward(clean)), clean, atol=0.02)


def test_family_draws_each_detector_kind_in_its_share():
    family = DetectorNoiseFamily(physical_share=0.5, display_share=0.3, correlated_share=0.0, bits=[16])
    generator = torch.Generator().manual_seed(3)
    clean = _flat(0.5, 32)
    untouched = sum(
        torch.allclose(family.simulate(clean, 0.1, generator), quantize(clean, 16), atol=1e-6) for _ in range(400)
    )
    assert untouched / 400 == pytest.approx(0.2, abs=0.06)  # the no-noise share leaves images alone


def test_correlated_noise_is_correlated_between_neighbours_and_white_noise_is_not():
    def neighbour_correlation(correlated_share: float) -> float:
        family = DetectorNoiseFamily(1.0, 0.0, correlated_share=correlated_share, psf_sigma=1.0, bits=[16])
        noise = (family.simulate(_flat(0.5), 0.1, torch.Generator().manual_seed(4)) - 0.5)[0].numpy()
        return float(np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1])

    assert abs(neighbour_correlation(0.0)) < 0.05
    assert neighbour_correlation(1.0) > 0.5


def test_gaussian_blur_keeps_a_flat_image_and_spreads_a_point():
    flat = _flat(0.3, 16)
    assert torch.allclose(gaussian_blur(flat, 0.8), flat)
    point = torch.zeros(1, 15, 15)
    point[0, 7, 7] = 1.0
    blurred = gaussian_blur(point, 1.0)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5) and float(blurred[0, 7, 7]) < 0.2


def test_family_bit_depths_and_same_seed_same_noise():
    family = DetectorNoiseFamily(bits=[8])
    a = family.simulate(_flat(0.5, 32), 0.3, torch.Generator().manual_seed(5))
    b = family.simulate(_flat(0.5, 32), 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(a, torch.round(a * 255) / 255)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"physical_share": 0.7, "display_share": 0.5}, "physical_share \\+ display_share"),
        ({"I0": [2000.0, 1000.0]}, "I0"),
        ({"p_min": [0.0, 2.5], "p_max": [2.0, 3.0]}, "p_max"),
        ({"bits": [24]}, "bits"),
        ({"correlated_share": 1.5}, "correlated_share"),
    ],
)
def test_family_errors_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DetectorNoiseFamily(**kwargs)


def test_reports_evaluate_a_family_run_on_the_physical_dose_study():
    run_data = OmegaConf.create({"noise": {"_target_": "datamodules.detector_noise.DetectorNoiseFamily"}})
    model = noise_model(None, run_data)
    assert type(model) is PhysicalNoiseModel and model.I0 == PhysicalNoiseModel().I0


def test_report_takes_a_noise_option_by_name_and_defaults_to_the_runs():
    from conftest import compose_config

    run_data = OmegaConf.create({"noise": {"_target_": "datamodules.detector_noise.DetectorNoiseFamily"}})
    protocol = compose_config("report", ["data/noise@noise=sharpxr"])
    model = noise_model(protocol.get("noise"), run_data)
    assert isinstance(model, PoissonGaussianNoiseModel) and model.eta == (50.0, 300.0) and model.quantize_bits == 8
    assert model.sigma == pytest.approx((5 / 255, 25 / 255))
    assert compose_config("report").get("noise") is None


def test_validation_noisy_means_leave_out_inputs_without_noise():
    """The family's clean share gives inputs equal to their targets (infinite PSNR); the mean stays finite."""
    from skimage.metrics import peak_signal_noise_ratio

    from lightning_modules.training.module import StageMetrics

    rng = np.random.default_rng(0)
    high = torch.from_numpy(rng.uniform(0.2, 0.8, (2, 1, 32, 32)).astype(np.float32))
    low = high.clone()
    low[1] = (high[1] + 0.05 * torch.from_numpy(rng.standard_normal((1, 32, 32)).astype(np.float32))).clamp(0, 1)
    metrics = StageMetrics()
    metrics.update(high.clone(), low, high)
    values = metrics.compute("val")
    expected = peak_signal_noise_ratio(high[1].numpy(), low[1].numpy(), data_range=1.0)
    assert abs(float(values["val/psnr_noisy"]) - expected) < 0.01
    assert float(values["val/mse"]) == 0.0  # the model's means still count every image
