from pathlib import Path

import pytest
import torch

from lightning_modules.nets.unet import DenoisingUnet


def test_output_matches_odd_input_size():
    net = DenoisingUnet().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 250, 301))
    assert out.shape == (1, 1, 250, 301)


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    net = DenoisingUnet().eval()
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        ref = net(x)
        fast = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, fast, atol=1e-4)


def test_residual_adds_the_input():
    torch.manual_seed(0)
    plain, residual = DenoisingUnet(residual=False).eval(), DenoisingUnet(residual=True).eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(residual(x), plain(x) + x, atol=1e-6)


def test_affine_skip_adds_two_learned_scalars_and_survives_export_and_onnx(tmp_path):
    from lightning_modules.nets.checkpoints import export_safetensors, load_network

    torch.manual_seed(0)
    plain, affine = DenoisingUnet(residual=False).eval(), DenoisingUnet(residual="affine").eval()
    affine.load_state_dict({**plain.state_dict(), "skip.affine": torch.tensor([0.7, -0.05])})
    assert [name for name, _ in affine.named_parameters() if name.startswith("skip")] == ["skip.affine"]
    x = torch.rand(1, 1, 40, 72)
    with torch.no_grad():
        expected = plain(x) + 0.7 * x - 0.05
        assert torch.allclose(affine(x), expected, atol=1e-6)
        export_safetensors(
            tmp_path / "a.safetensors", affine, {"encoder_name": "resnet18", "residual": "affine"}, half=False
        )
        loaded, hparams = load_network(tmp_path / "a.safetensors")
        assert hparams["residual"] == "affine" and torch.allclose(loaded(x), expected, atol=1e-6)
        assert torch.allclose(_onnx(loaded, tmp_path)(x), expected, atol=1e-4)
    with pytest.raises(ValueError, match="model.residual='yes'"):
        DenoisingUnet(residual="yes")


def test_lowpass_skip_adds_a_blur_that_never_sees_the_pixel_itself(tmp_path):
    import torch.nn.functional as F

    from lightning_modules.nets.checkpoints import export_safetensors, load_network
    from lightning_modules.nets.skip import LOWPASS_SIGMA, blind_lowpass

    # an independent construction: the full 2-D kernel, centre zeroed, renormalised, one convolution
    r = 12
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    kernel = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * LOWPASS_SIGMA**2))
    kernel[r, r] = 0.0
    kernel /= kernel.sum()
    x = torch.rand(2, 1, 40, 56, dtype=torch.float64)
    reference = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), kernel[None, None])
    assert torch.allclose(blind_lowpass(x).double(), reference, atol=1e-6)
    assert torch.allclose(blind_lowpass(torch.full((1, 1, 30, 30), 0.3)), torch.tensor(0.3), atol=1e-6)

    x = torch.rand(1, 1, 48, 48, requires_grad=True)
    blind_lowpass(x)[0, 0, 20, 31].backward()
    assert abs(float(x.grad[0, 0, 20, 31])) < 1e-7 and float(x.grad[0, 0, 20, 30]) > 1e-3

    torch.manual_seed(0)
    plain, lowpass = DenoisingUnet(residual=False).eval(), DenoisingUnet(residual="lowpass").eval()
    lowpass.load_state_dict(plain.state_dict())  # no parameters of its own
    x = torch.rand(1, 1, 40, 72)
    with torch.no_grad():
        expected = plain(x) + blind_lowpass(x)
        assert torch.allclose(lowpass(x), expected, atol=1e-6)
        hparams = {"encoder_name": "resnet18", "residual": "lowpass"}
        export_safetensors(tmp_path / "l.safetensors", lowpass, hparams, half=False)
        loaded, hparams = load_network(tmp_path / "l.safetensors")
        assert hparams["residual"] == "lowpass" and torch.allclose(loaded(x), expected, atol=1e-6)
        assert torch.allclose(_onnx(loaded, tmp_path)(x), expected, atol=1e-4)


def _onnx(net: DenoisingUnet, cache: Path):
    """``net`` exported to ONNX and run by ONNX Runtime (the default CPU backend); the test skips without it."""
    pytest.importorskip("onnxruntime")
    from lightning_modules.inference.onnx import OnnxPredictor, cached_onnx

    path, _ = cached_onnx(net, "skip-test", cache)
    return OnnxPredictor(path, eval_margin=net.eval_margin)


def test_a_few_steps_on_one_batch_raise_psnr():
    """Wiring check of model + loss + optimizer: fitting one fixed batch must improve it."""
    from lightning_modules.nets.losses import build_loss
    from lightning_modules.nets.metrics import image_metrics

    torch.manual_seed(0)
    high = torch.rand(1, 1, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2).repeat(4, 1, 1, 1)
    high = 0.1 + 0.8 * high
    low = (0.585 * high + 0.048 + 0.046 * torch.randn(high.shape)).clamp(0, 1)
    net = DenoisingUnet(decoder_channels=(64, 32, 16, 16, 8))  # small decoder: the wiring, not the capacity
    loss_fn = build_loss("l1")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.eval()
    with torch.no_grad():
        before = image_metrics(net(low), high)["psnr"].mean()
    net.train()
    for _ in range(20):
        optimizer.zero_grad()
        loss_fn(net(low), high).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        after = image_metrics(net(low), high)["psnr"].mean()
    assert after > before + 5.0, (float(before), float(after))


def test_group_norm_option_replaces_every_batch_norm_and_round_trips(tmp_path):
    from lightning_modules.nets.checkpoints import load_network, save_weights

    net = DenoisingUnet(norm="group").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    save_weights(tmp_path / "n.pth", net, {"encoder_name": "resnet18", "residual": False, "norm": "group"})
    loaded, _ = load_network(tmp_path / "n.pth")
    x = torch.rand(1, 1, 40, 56)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


def test_safetensors_export_round_trips_and_rejects_foreign_files(tmp_path):
    from lightning_modules.nets.checkpoints import export_safetensors, load_network

    torch.manual_seed(0)
    net = DenoisingUnet(residual=True).eval()
    hparams = {"encoder_name": "resnet18", "residual": True, "norm": "batch", "channels_last": True, "loss": {"x": 1}}
    export_safetensors(tmp_path / "fp32.safetensors", net, hparams, half=False)
    export_safetensors(tmp_path / "fp16.safetensors", net, hparams, half=True)
    x = torch.rand(1, 1, 64, 96)
    exact, saved = load_network(tmp_path / "fp32.safetensors")
    halved, _ = load_network(tmp_path / "fp16.safetensors")
    assert saved == {"encoder_name": "resnet18", "residual": True, "norm": "batch", "channels_last": True}
    assert all(p.dtype == torch.float32 for p in halved.parameters())
    with torch.no_grad():
        reference = net(x)
        assert torch.equal(exact(x), reference)
        assert (halved(x) - reference).abs().max() < 0.05  # fp16 rounding of the weights only
    assert (tmp_path / "fp16.safetensors").stat().st_size < 0.55 * (tmp_path / "fp32.safetensors").stat().st_size
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors: not a readable safetensors file"):
        load_network(tmp_path / "junk.safetensors")


def test_self_ensemble_inverts_every_view_and_averages():
    from lightning_modules.inference.ensemble import SelfEnsemble, dihedral, inverse_dihedral, with_tta

    x = torch.rand(2, 1, 5, 7)
    views = [dihedral(x, k) for k in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # eight different views
    for k, view in enumerate(views):
        assert torch.equal(inverse_dihedral(view, k), x)
    # A position-dependent "network": each view sees a different ramp, the average is exact.
    ramp = lambda t: t + torch.arange(t.shape[-1], dtype=t.dtype)  # noqa: E731
    ensemble = SelfEnsemble(ramp, transforms=8)
    expected = torch.stack([inverse_dihedral(ramp(v), k) for k, v in enumerate(views)]).mean(0)
    assert torch.allclose(ensemble(x), expected)
    assert torch.allclose(SelfEnsemble(lambda t: 2 * t, transforms=4)(x), 2 * x)
    net = torch.nn.Identity()
    assert with_tta(net, False) is net and with_tta(net, 8).transforms == 8 and with_tta(net, True).transforms == 4
    with pytest.raises(ValueError, match="tta=3"):
        with_tta(net, 3)
    from lightning_modules.inference.ensemble import DihedralView

    for k in range(8):  # one view alone is that view's term of the 8-view mean
        assert torch.allclose(DihedralView(ramp, k)(x), inverse_dihedral(ramp(views[k]), k))
    with pytest.raises(ValueError, match="view=8: use 0..7"):
        DihedralView(net, 8)
