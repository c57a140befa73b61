import torch

from lightning_modules.model import DenoisingUnet


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


def test_a_few_steps_on_one_batch_raise_psnr():
    """Wiring check of model + loss + optimizer: fitting one fixed batch must improve it."""
    from lightning_modules.losses import build_loss
    from lightning_modules.metrics import image_metrics

    torch.manual_seed(0)
    high = torch.rand(1, 1, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2).repeat(4, 1, 1, 1)
    high = 0.1 + 0.8 * high
    low = (0.585 * high + 0.048 + 0.046 * torch.randn(high.shape)).clamp(0, 1)
    net = DenoisingUnet()
    loss_fn = build_loss("l1")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.eval()
    with torch.no_grad():
        before = image_metrics(net(low), high)["psnr"].mean()
    net.train()
    for _ in range(30):
        optimizer.zero_grad()
        loss_fn(net(low), high).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        after = image_metrics(net(low), high)["psnr"].mean()
    assert after > before + 5.0, (float(before), float(after))


def test_group_norm_option_replaces_every_batch_norm_and_round_trips(tmp_path):
    from lightning_modules.checkpoint_io import load_network, save_weights

    net = DenoisingUnet(norm="group").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    save_weights(tmp_path / "n.pth", net, {"encoder_name": "resnet18", "residual": False, "norm": "group"})
    loaded, _ = load_network(tmp_path / "n.pth")
    x = torch.rand(1, 1, 40, 56)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
