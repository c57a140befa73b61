"""The full-resolution input block (``model.input_block``): grows into a trained network unchanged, then learns."""

import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf

from lightning_modules.nets.checkpoints import load_weights_into, save_weights
from lightning_modules.nets.unet import DenoisingUnet

PLAIN = {"encoder_name": "resnet18", "residual": False, "norm": "batch", "decoder_channels": [16, 16, 16, 16, 16]}


def _net(**kwargs) -> DenoisingUnet:
    return DenoisingUnet(**PLAIN, **kwargs)


def test_a_checkpoint_without_the_block_grows_into_one_unchanged_and_the_block_then_learns(tmp_path):
    torch.manual_seed(0)
    plain = _net().eval()
    path = save_weights(tmp_path / "plain.pth", plain, PLAIN)
    net = _net(input_block=True)
    load_weights_into(net, path, {**PLAIN, "input_block": True}, "init_weights")
    x = torch.rand(2, 1, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), plain(x), rtol=0, atol=0)

    net.train()
    loss = torch.nn.functional.mse_loss(net(x), x)
    loss.backward()
    assert net.input_block.mix[-1].weight.grad.abs().sum() > 0  # the zero-initialised layer gets a gradient
    torch.optim.SGD(net.input_block.parameters(), lr=0.1).step()
    with torch.no_grad():
        assert (net.eval()(x) - plain(x)).abs().max() > 1e-4


def test_a_checkpoint_with_the_block_does_not_load_into_a_network_without_it(tmp_path):
    grown = _net(input_block=True)
    path = save_weights(tmp_path / "grown.pth", grown, {**PLAIN, "input_block": True})
    with pytest.raises(ValueError, match=r"init_weights=.*input_block: True in the checkpoint, False in model"):
        load_weights_into(_net(), path, {**PLAIN, "input_block": False}, "init_weights")


def test_runs_from_before_the_block_keep_their_fingerprint_so_resume_finds_them():
    from lightning_modules.runs.records import config_fingerprint

    cfg = compose_config("train", ["experiment=pretrained", "data.root=somewhere"])
    before = OmegaConf.to_container(cfg, resolve=False)
    del before["model"]["input_block"]  # a run started before the key existed
    assert config_fingerprint(cfg) == config_fingerprint(OmegaConf.create(before))
    grown = compose_config("train", ["experiment=pretrained", "data.root=somewhere", "model.input_block=true"])
    assert config_fingerprint(grown) != config_fingerprint(cfg)
