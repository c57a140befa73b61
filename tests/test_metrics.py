import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lightning_modules.nets.losses import LOSSES, build_loss
from lightning_modules.nets.metrics import exact_fp32_convolutions, image_metrics


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


def _round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """Round fp32 to TF32's 10-bit mantissa (to nearest, ties to even), as tensor cores read their inputs."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x0FFF + ((bits >> 13) & 1)) & ~0x1FFF).view(torch.float32)


def test_ssim_convolutions_leave_tf32_on_cuda(monkeypatch):
    """CUDA's default TF32 convolutions pull SSIM down (noisy images: 0.4295 on an H200, 0.4335 on the CPU).

    No GPU here, so the CPU's conv2d plays cuDNN: it rounds its inputs to TF32 whenever cuDNN's TF32 flag is on.
    """
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    clean = (0.55 + 0.3 * torch.sin(5 * x) * torch.cos(4 * y))[None, None]
    noisy = (clean + 0.08 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    exact = image_metrics(noisy, clean)["ssim"]

    conv2d = torch.nn.functional.conv2d

    def cudnn_like_conv2d(inputs, weight, *args, **kwargs):
        if torch.backends.cudnn.allow_tf32:
            inputs, weight = _round_to_tf32(inputs), _round_to_tf32(weight)
        return conv2d(inputs, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", cudnn_like_conv2d)
    rounded = image_metrics(noisy, clean)["ssim"]  # a CPU tensor: the guard leaves the flag on
    assert float((rounded - exact).abs()) > 1e-3  # the error the guard exists for
    with exact_fp32_convolutions("cuda:0"):
        assert not torch.backends.cudnn.allow_tf32
        guarded = image_metrics(noisy, clean)["ssim"]
    assert torch.equal(guarded, exact)
    assert torch.backends.cudnn.allow_tf32  # restored afterwards


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


def test_summary_leaves_out_infinite_psnr_and_stays_strict_json(tmp_path):
    """An input identical to its target (a clean input of the detector family) has PSNR = inf."""
    import json

    from rich.console import Console

    from lightning_modules.inference.evaluate import COLUMNS, metrics_table, write_results

    rows = [dict.fromkeys(COLUMNS[1:], 0.5) | {"file": f"{i}.png"} for i in range(3)]
    rows[0] |= {"psnr_noisy": float("inf"), "mse_noisy": 0.0}
    rows[1]["psnr_noisy"], rows[2]["psnr_noisy"] = 30.0, 20.0
    write_results(tmp_path, rows, {})

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=no_constants)
    assert summary["metrics"]["psnr_noisy"] == {"mean": 25.0, "std": pytest.approx(50**0.5), "not_finite": 1}
    assert summary["metrics"]["psnr"] == {"mean": 0.5, "std": 0.0}
    console = Console(width=200, record=True)
    console.print(metrics_table(summary["metrics"]))
    assert "25.00 (1 infinite, left out)" in console.export_text()
