import numpy as np
import pytest
import torch

from datamodules.noise import GaussianNoiseModel, PhysicalNoiseModel, check_dose, sample_dose
from lightning_modules.nets.metrics import image_metrics


def test_flat_field_counts_follow_poisson_plus_gaussian():
    model = PhysicalNoiseModel(I0=1000.0, sigma_e=4.0, p_min=0.1, p_max=3.0)
    clean = torch.full((1, 512, 512), 0.4)
    counts = model.counts(clean, dose=0.5, generator=torch.Generator().manual_seed(0))
    expected = 0.5 * 1000.0 * np.exp(-(0.1 + 2.9 * 0.4))
    assert float(counts.mean()) == pytest.approx(expected, rel=0.01)
    assert float(counts.var()) == pytest.approx(expected + 4.0**2, rel=0.03)


def test_psnr_falls_monotonically_as_dose_falls():
    clean = torch.linspace(0.05, 0.95, 128 * 128).reshape(1, 1, 128, 128)
    model = PhysicalNoiseModel()
    psnrs = []
    for dose in (1.0, 0.5, 0.25, 0.1, 0.05):
        noisy = model.simulate(clean, dose, torch.Generator().manual_seed(1))
        psnrs.append(float(image_metrics(noisy, clean)["psnr"][0]))
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs


def test_huge_photon_count_returns_the_clean_image():
    clean = torch.rand(1, 37, 31)
    noisy = PhysicalNoiseModel(I0=1e12, sigma_e=0.0).simulate(clean, 1.0, torch.Generator().manual_seed(0))
    assert float((noisy - clean).abs().max()) < 1e-3


def test_same_seed_same_output():
    clean = torch.rand(1, 37, 31)
    for model in (PhysicalNoiseModel(), GaussianNoiseModel()):
        a = model.simulate(clean, 0.1, torch.Generator().manual_seed(5))
        b = model.simulate(clean, 0.1, torch.Generator().manual_seed(5))
        c = model.simulate(clean, 0.1, torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_dose_ranges_are_log_uniform_and_validated():
    generator = torch.Generator().manual_seed(0)
    draws = np.array([sample_dose((0.05, 1.0), generator) for _ in range(4000)])
    assert draws.min() >= 0.05 and draws.max() <= 1.0
    # log-uniform: the median is the geometric mean of the ends
    assert np.median(draws) == pytest.approx(np.sqrt(0.05), rel=0.05)
    assert check_dose(0.25) == 0.25
    with pytest.raises(ValueError, match="data.dose must be > 0"):
        check_dose(0)
    with pytest.raises(ValueError, match=r"data.dose must be .* range \[low, high\]"):
        check_dose([1.0, 0.1])
    with pytest.raises(ValueError, match="dose must be > 0"):
        PhysicalNoiseModel().simulate(torch.rand(1, 4, 4), dose=-1.0)


def test_simulated_datamodule_on_a_flat_folder(tmp_path):
    from conftest import make_clean_dataset

    from datamodules.datamodule import SimulatedDataModule

    make_clean_dataset(tmp_path, {"flat": 40}, shape=(64, 64))
    dm = SimulatedDataModule(
        root=str(tmp_path / "flat"),
        noise=PhysicalNoiseModel(),
        dose=[0.05, 1.0],
        patch_size=32,
        val_fraction=0.2,
        test_fraction=0.2,
        num_workers=0,
    )
    dm.setup()
    names = [{p.name for p in dm._files(s)} for s in ("train", "val", "test")]
    assert sum(len(n) for n in names) == 40 and not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    val = dm.dataset("val")
    first, again = val[0], val[0]
    assert torch.equal(first["low"], again["low"]) and first["dose"] == again["dose"]
    assert 0.05 <= first["dose"] <= 1.0
    assert dm.dataset("train")[0]["low"].shape == (1, 32, 32)
