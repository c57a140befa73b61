"""Fusing a blind-spot prediction with the pixel's own noisy value (lightning_modules/selfsup/fusion.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_config, make_clean_dataset, tiny_train_config
from omegaconf import OmegaConf
from scipy.ndimage import uniform_filter

from lightning_modules.nets.metrics import image_metrics
from lightning_modules.nets.skip import blind_lowpass
from lightning_modules.selfsup.config import check_training_config
from lightning_modules.selfsup.fusion import FusedDenoiser, evaluation_fusion, fuse_with_input, with_fusion
from lightning_modules.selfsup.noise_level import NoiseLevel, NoiseLevelError

SIGMA = 0.05


def _scene(size: int = 96) -> torch.Tensor:
    """Smooth shading, a sharp-edged disc and a row of one-pixel dots: detail a blur cannot keep."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = 0.3 + 0.2 * xx / size
    image = image + 0.3 * (((yy - 40) ** 2 + (xx - 48) ** 2) < 20**2)
    image[80, 8:88:4] = 0.9
    return image.float()[None, None]


def _psnr(x: torch.Tensor, clean: torch.Tensor) -> float:
    return float(image_metrics(x.clamp(0, 1), clean)["psnr"][0])


def test_fusion_puts_back_the_detail_a_blind_spot_prediction_misses():
    clean = _scene()
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    pred = blind_lowpass(noisy)  # a prediction from the neighbours only: flat regions good, edges blurred
    fused = fuse_with_input(pred, noisy, SIGMA**2, 15)
    assert _psnr(fused, clean) > _psnr(pred, clean) + 1.0
    assert _psnr(fused, clean) > _psnr(noisy, clean) + 3.0
    # underestimating the noise lets it through (the documented asymmetry); overestimating costs less
    assert _psnr(fuse_with_input(pred, noisy, (SIGMA / 4) ** 2, 15), clean) < _psnr(fused, clean) - 3.0
    assert _psnr(fuse_with_input(pred, noisy, (2 * SIGMA) ** 2, 15), clean) > _psnr(pred, clean)


def test_fusion_weight_matches_an_independent_numpy_implementation():
    rng = np.random.default_rng(1)
    pred, noisy = rng.random((1, 1, 20, 24)), rng.random((1, 1, 20, 24))
    noise_var = 0.01 + 0.05 * rng.random((1, 1, 20, 24))
    window = 5
    local = lambda a: uniform_filter(a[0, 0], size=window, mode="nearest")  # noqa: E731 - edge-replicated box mean
    excess = np.maximum(local((noisy - pred) ** 2) - local(noise_var), 0.0)
    expected = pred[0, 0] + excess / (excess + noise_var[0, 0]) * (noisy - pred)[0, 0]
    got = fuse_with_input(*(torch.from_numpy(a).float() for a in (pred, noisy, noise_var)), window)
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-5)


def test_fusion_keeps_the_prediction_under_heavy_noise_and_the_input_without_noise():
    pred, noisy = torch.zeros(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    assert torch.allclose(fuse_with_input(pred, noisy, 1e6, 3), pred, atol=1e-6)
    assert torch.allclose(fuse_with_input(pred, noisy, 0.0, 3), noisy, atol=1e-6)


@pytest.mark.parametrize("window", [4, 1, -3, True, "15"])
def test_fusion_window_must_be_zero_or_odd_and_the_error_names_the_key(window):
    training = {"method": "n2v2", "mask_grid": 5, "blind_radius": 0, "fusion_window": window, "sigma": "auto"}
    with pytest.raises(ValueError, match="training.fusion_window"):
        check_training_config(training)
    check_training_config({**training, "fusion_window": 0, "sigma": "nonsense"})  # no fusion: sigma unused
    with pytest.raises(ValueError, match="training.sigma"):
        check_training_config({**training, "fusion_window": 15, "sigma": "nonsense"})


def test_fused_network_uses_the_recorded_dose_and_refuses_a_physical_level_without_one():
    physical = {"kind": "physical", "model": "physical", "I0": 1e4, "sigma_e": 5.0, "p_min": 0.0, "p_max": 4.0}
    physical["eps"] = 1e-3
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="no dose is recorded"):
        FusedDenoiser(net, {"window": 5, "noise_level": physical})
    fused = with_fusion(net, {"window": 5, "noise_level": {**physical, "dose": 0.1}})
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        sigma = NoiseLevel(physical)(x, 0.1)
        assert torch.allclose(fused(x), fuse_with_input(net(x), x, sigma**2, 5), atol=1e-6)
    assert with_fusion(net, None) is net
    with pytest.raises(NoiseLevelError, match="no dose"):
        NoiseLevel(physical)(x)


def test_test_py_fusion_choice():
    constant = {"kind": "constant", "sigma": 0.05, "source": "training.sigma"}
    n2v2 = {"training": {"method": "n2v2", "noise_level": constant}, "fusion": {"window": 15, "noise_level": constant}}
    assert evaluation_fusion("auto", n2v2, None, None) == n2v2["fusion"]
    assert evaluation_fusion("off", n2v2, None, None) is None
    assert evaluation_fusion(9, n2v2, None, None) == {"window": 9, "noise_level": constant}
    with pytest.raises(ValueError, match="^fusion must be"):
        evaluation_fusion(8, n2v2, None, None)
    with pytest.raises(ValueError, match="supervised model returns full-dose intensities"):
        evaluation_fusion(15, {"training": {"method": "supervised"}}, None, None)


def test_n2v2_config_fuses_by_default_and_the_module_validates_the_fused_output():
    from lightning_modules.training.self_supervised import SelfSupervisedDenoiser

    plain = OmegaConf.to_container(compose_config("train", ["training=n2v2"]), resolve=False)
    training = plain["training"]
    assert training["fusion_window"] == 15 and training["sigma"] == "auto"
    with pytest.raises(ValueError, match="needs a resolved noise_level"):
        SelfSupervisedDenoiser(loss=plain["loss"], optim=plain["optim"], training=training, **plain["model"])
    training["noise_level"] = {"kind": "constant", "sigma": SIGMA, "source": "training.sigma"}
    module = SelfSupervisedDenoiser(loss=plain["loss"], optim=plain["optim"], training=training, **plain["model"])
    assert module.hparams["fusion"] == {"window": 15, "noise_level": training["noise_level"]}
    low = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        expected = fuse_with_input(module(low).float(), low, SIGMA**2, 15)
        assert torch.allclose(module.denoise(low), expected, atol=1e-6)
        assert not torch.allclose(module.denoise(low), module(low).float(), atol=1e-4)


@pytest.mark.e2e  # a 1-epoch training on 64² images, then test.py and the denoise path
def test_simulated_n2v2_run_records_its_noise_level_and_every_inference_path_fuses(tmp_path):
    from lightning_modules.commands.evaluate import evaluate
    from lightning_modules.commands.train import train
    from lightning_modules.inference.backends import choose_path, load_predictor
    from lightning_modules.nets.checkpoints import load_network

    root = make_clean_dataset(tmp_path / "clean", {"train": 8, "val": 2, "test": 2})
    run_dir = tmp_path / "logs" / "train" / "runs" / "run1"
    cfg = tiny_train_config(
        run_dir,
        [
            "data=simulated",
            f"data.root={root}",
            "data.dose=0.1",
            "data.min_foreground=0.0",
            "training=n2v2",
            "trainer.max_epochs=1",
            "trainer.num_sanity_val_steps=0",
            "test=false",
        ],
    )
    train(cfg)
    best = run_dir / "checkpoints" / "best.ckpt"
    fusion = torch.load(best, weights_only=True)["hyper_parameters"]["fusion"]
    assert fusion["window"] == 15 and fusion["noise_level"]["kind"] == "physical"
    assert fusion["noise_level"]["dose"] == 0.1
    args = [f"paths.log_dir={tmp_path / 'logs'}", "ckpt=best", "device=cpu", "write_images=false"]
    fused = evaluate(compose_config("test", [*args, f"results_dir={tmp_path / 'a'}"]))
    plain = evaluate(compose_config("test", [*args, "fusion=off", f"results_dir={tmp_path / 'b'}"]))
    assert fused["fusion"] == fusion and plain["fusion"] is None
    assert fused["metrics"]["psnr"]["mean"] != pytest.approx(plain["metrics"]["psnr"]["mean"], abs=1e-6)
    predictor, _ = load_predictor(best, "cpu", choose_path("torch", "32", "cpu"))  # what denoise.py runs
    raw, hparams = load_network(best)
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        level = NoiseLevel(fusion["noise_level"])(x)
        expected = fuse_with_input(raw(x), x, level**2, 15)
        mapped = hparams["intensity_map"]
        expected = mapped["gain"] * expected.clamp(0, 1) + mapped["offset"]
        assert torch.allclose(predictor(x), expected, atol=1e-5)


def test_n2v2_on_a_dose_range_refuses_fusion_at_the_physical_level_before_training():
    from types import SimpleNamespace

    from datamodules.noise import PhysicalNoiseModel
    from lightning_modules.training.self_supervised import build_module

    overrides = ["data=simulated", "data.root=unused", "data.dose=[0.05,1.0]", "training=n2v2"]
    data = SimpleNamespace(noise=PhysicalNoiseModel())  # the resolution reads the noise model only
    with pytest.raises(ValueError, match=r"training.fusion_window=15 with data.dose=\[0.05, 1.0\].*fusion_window=0"):
        build_module(compose_config("train", overrides), data)
