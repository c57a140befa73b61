"""The fitted noise model: floor and JPEG in the simulation, the fit recovering known parameters, the
fit_noise script, and paired training on fresh simulated noise."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, smooth_image
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from datamodules.datamodule import PairedDataModule
from datamodules.io.images import write_image
from datamodules.io.pairing import find_pairs
from datamodules.io.pixels import ImageInfo
from datamodules.noise import AffineGaussianNoiseModel, jpeg_roundtrip
from datamodules.noise_fit import fit_affine_gaussian, jpeg_quality
from lightning_modules.commands.fit_noise import fit_noise

GAIN, OFFSET, SIGMA, FLOOR = 0.62, 9.0 / 255, 10.0 / 255, 12.0 / 255


def _write_pairs(split_dir: Path, count: int, jpeg_every: int = 0, quality: int = 90, seed: int = 0) -> None:
    """Pairs degraded by the affine + Gaussian model with a floor; every ``jpeg_every``-th low-dose
    image stored as JPEG at ``quality`` (its clean partner too, by name)."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        high = np.clip(smooth_image(rng, 96, 96) * 1.2 - 0.2, 0.0, 1.0)  # dark regions, so the floor clips
        high = (np.round(high * 255) / 255).astype(np.float32)
        low = np.clip(GAIN * high + OFFSET + rng.normal(0, SIGMA, high.shape), FLOOR, 1.0)
        low8 = np.round(low * 255).astype(np.uint8)
        as_jpeg = jpeg_every and k % jpeg_every == 0
        suffix = ".jpeg" if as_jpeg else ".png"
        write_image(split_dir / "high" / f"img_{k}{suffix}", high, ImageInfo(8, suffix))
        write_image(split_dir / "low" / f"img_{k}{suffix}", low8 / 255.0, ImageInfo(8, suffix))
        if as_jpeg:  # write_image stores JPEG at quality 100; the low-dose file gets the chosen quality
            Image.fromarray(low8).save(split_dir / "low" / f"img_{k}{suffix}", format="JPEG", quality=quality)


def test_floor_clips_and_jpeg_matches_pillow():
    clean = torch.rand(1, 40, 48, generator=torch.Generator().manual_seed(0))
    plain = AffineGaussianNoiseModel(sigma=0.2, floor=0.1).simulate(clean, 1.0, torch.Generator().manual_seed(1))
    assert float(plain.min()) == pytest.approx(round(0.1 * 255) / 255, abs=1e-6)

    pixels = (plain[0] * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    expected = np.asarray(Image.open(buffer), dtype=np.float32) / 255
    assert np.array_equal(jpeg_roundtrip(plain, 80)[0].numpy(), expected)
    assert not torch.equal(jpeg_roundtrip(plain, 80), plain)  # the compression really changed it

    always = AffineGaussianNoiseModel(sigma=0.2, floor=0.1, jpeg_quality=80, jpeg_fraction=1.0)
    never = AffineGaussianNoiseModel(sigma=0.2, floor=0.1, jpeg_quality=80, jpeg_fraction=0.0)
    # same generator: the same Gaussian draw, then JPEG or not
    assert torch.equal(never.simulate(clean, 1.0, torch.Generator().manual_seed(1)), plain)
    assert torch.equal(always.simulate(clean, 1.0, torch.Generator().manual_seed(1)), jpeg_roundtrip(plain, 80))


def test_jpeg_fraction_is_the_share_of_compressed_images():
    model = AffineGaussianNoiseModel(jpeg_quality=50, jpeg_fraction=0.3)
    never = AffineGaussianNoiseModel(jpeg_quality=50, jpeg_fraction=0.0)
    clean = torch.full((1, 16, 16), 0.5)

    def compressed(seed: int) -> bool:  # the same Gaussian draw, stored as JPEG or not
        draw = model.simulate(clean, 1.0, torch.Generator().manual_seed(seed))
        return not torch.equal(draw, never.simulate(clean, 1.0, torch.Generator().manual_seed(seed)))

    share = np.mean([compressed(seed) for seed in range(400)])
    assert 0.24 < share < 0.36


@pytest.mark.parametrize(
    "kwargs, message",
    [({"floor": 1.0}, "floor"), ({"jpeg_quality": 0}, "jpeg_quality"), ({"jpeg_fraction": 1.5}, "jpeg_fraction")],
)
def test_bad_noise_model_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AffineGaussianNoiseModel(**kwargs)


def test_fit_recovers_the_parameters_of_known_pairs(tmp_path):
    _write_pairs(tmp_path / "train", 24, jpeg_every=4, quality=90)
    fitted = fit_affine_gaussian(find_pairs(tmp_path / "train"))
    assert fitted["gain"] == pytest.approx(GAIN, abs=0.01)
    assert fitted["offset"] == pytest.approx(OFFSET, abs=2 / 255)
    assert fitted["sigma"] == pytest.approx(SIGMA, rel=0.03)  # from the 18 PNG pairs, rounding included
    assert fitted["floor"] == pytest.approx(FLOOR, abs=0.5 / 255)
    assert fitted["jpeg_quality"] == 90 and fitted["jpeg_fraction"] == pytest.approx(6 / 24)
    assert fitted["checks"]["pairs_for_noise"] == 18
    assert abs(fitted["checks"]["residual_correlation"]["x"]) < 0.05  # white noise reads as white
    AffineGaussianNoiseModel(**{k: v for k, v in fitted.items() if k != "checks"})


def test_jpeg_quality_reads_the_table_and_ignores_other_files(tmp_path):
    pixels = (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)
    for quality in (40, 75, 95):
        Image.fromarray(pixels).save(tmp_path / f"q{quality}.jpeg", quality=quality)
        assert jpeg_quality(tmp_path / f"q{quality}.jpeg") == quality
    Image.fromarray(pixels).save(tmp_path / "lossless.png")
    assert jpeg_quality(tmp_path / "lossless.png") is None


def test_fit_noise_writes_a_config_that_instantiates_and_refuses_test_and_overwrite(tmp_path):
    _write_pairs(tmp_path / "data" / "train", 12, jpeg_every=3, quality=95)
    output = tmp_path / "fitted.yaml"
    overrides = [f"data_root={tmp_path / 'data'}", f"output={output}"]
    fitted = fit_noise(compose_config("fit_noise", overrides))
    model = instantiate(OmegaConf.load(output))
    assert isinstance(model, AffineGaussianNoiseModel)
    assert model.gain == pytest.approx(fitted["gain"], abs=1e-6) and model.jpeg_quality == 95

    before = output.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=true"):
        fit_noise(compose_config("fit_noise", overrides))
    assert output.read_bytes() == before
    with pytest.raises(ValueError, match="split=test"):
        fit_noise(compose_config("fit_noise", [*overrides, "split=test", "overwrite=true"]))


def test_paired_training_on_fresh_noise_keeps_real_validation(paired_root):
    noise = AffineGaussianNoiseModel(jpeg_quality=95, jpeg_fraction=0.5)
    datamodule = PairedDataModule(str(paired_root), train_noise=noise, patch_size=None, augment=False)
    train, val = datamodule.dataset("train"), datamodule.dataset("val")
    real_low = torch.from_numpy(np.asarray(Image.open(train.pairs[0].low), dtype=np.float32))
    first, second = train[0]["low"], train[0]["low"]
    assert not torch.equal(first, second)  # fresh noise on every draw
    assert first.shape == real_low[None].shape
    assert val[0]["low"].shape == first.shape and "high" in val[0]
    real_val = PairedDataModule(str(paired_root), patch_size=None, augment=False).dataset("val")
    assert torch.equal(val[0]["low"], real_val[0]["low"])  # validation keeps the real inputs

    keep_real = PairedDataModule(str(paired_root), train_noise=noise, real_fraction=1.0, patch_size=None, augment=False)
    plain = PairedDataModule(str(paired_root), patch_size=None, augment=False)
    assert torch.equal(keep_real.dataset("train")[0]["low"], plain.dataset("train")[0]["low"])
    with pytest.raises(ValueError, match="data.real_fraction"):
        PairedDataModule(str(paired_root), train_noise=noise, real_fraction=2.0)


def test_config_group_puts_the_fitted_model_under_train_noise(paired_root):
    cfg = compose_config("train", ["data=pairs", f"data.root={paired_root}", "data/noise@data.train_noise=cxr_pairs"])
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule.train_noise, AffineGaussianNoiseModel)
    assert datamodule.train_noise.floor == pytest.approx(10 / 255, abs=1e-4)
    assert instantiate(compose_config("train", ["data=pairs", f"data.root={paired_root}"]).data).train_noise is None
