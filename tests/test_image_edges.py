"""Image edges: the evaluation margin (edge replication around every input, ``model.eval_margin``).

The shipped model was trained on 128² crops; on whole images its quarter-turned views painted
streaks where bright tissue touches the image edge (about 26 dB instead of 31 on such views). With
the margin, every view of the image scores alike, so self-ensembling over all 8 views is safe.
"""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, shipped_weights
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules import SAMPLE_ROOT
from datamodules.io.images import read_image
from datamodules.io.pairing import list_images
from datamodules.noise import PhysicalNoiseModel
from lightning_modules.inference.ensemble import DihedralView
from lightning_modules.nets.checkpoints import load_network
from lightning_modules.nets.forward import DEFAULT_EVAL_MARGIN, forward_padded
from lightning_modules.nets.unet import DenoisingUnet
from lightning_modules.runs.records import config_fingerprint


def test_eval_mode_replicates_the_edges_and_training_does_not():
    torch.manual_seed(0)
    net = DenoisingUnet(norm="group", eval_margin=8)
    x = torch.rand(2, 1, 40, 56)
    with torch.no_grad():
        bare = forward_padded(net.unet, x, 32)  # 64×64: bottom/right replication only
        widened = forward_padded(net.unet, x, 32, margin=8)  # 8 on every side, then to 64×96
        assert net.train()(x).equal(bare)  # GroupNorm: train and eval differ only by the margin
        assert net.eval()(x).equal(widened)
        assert not torch.allclose(bare, widened, atol=1e-4)  # the margin does change the edges
    padded = torch.nn.functional.pad(x, (8, 32, 8, 16), mode="replicate")  # 40+8+16 = 64, 56+8+32 = 96
    assert padded.shape[-2:] == (64, 96)
    with torch.no_grad():
        torch.testing.assert_close(widened, net.unet(padded)[..., 8:48, 8:64])


def test_onnxruntime_keeps_the_checkpoints_margin(tmp_path):
    """The exported graph holds the bare network: ONNX Runtime pads by the checkpoint's margin around it."""
    pytest.importorskip("onnxruntime")
    from lightning_modules.inference.onnx import OnnxPredictor, cached_onnx

    torch.manual_seed(0)
    net = DenoisingUnet().eval()
    path, _ = cached_onnx(net, "margin-test", tmp_path)
    x = torch.rand(1, 1, 50, 70)
    for margin in (0, 8):
        net.eval_margin = margin
        with torch.no_grad():
            torch.testing.assert_close(OnnxPredictor(path, eval_margin=margin)(x), net(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "wide"])
def test_bad_margin_is_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match="model.eval_margin"):
        DenoisingUnet(eval_margin=bad)


def test_runs_started_before_the_margin_existed_keep_their_fingerprint():
    cfg = compose_config("train", ["data.root=somewhere"])
    assert cfg.model.eval_margin == DEFAULT_EVAL_MARGIN
    before = OmegaConf.to_container(cfg)
    del before["model"]["eval_margin"]
    assert config_fingerprint(cfg) == config_fingerprint(OmegaConf.create(before))
    assert config_fingerprint(cfg) != config_fingerprint(
        compose_config("train", ["data.root=somewhere", "model.eval_margin=0"])
    )


def _cxr_pairs_noise():
    return instantiate(
        compose_config("train", ["data=pairs", "data/noise@data.train_noise=cxr_pairs"]).data.train_noise
    )


@pytest.mark.parametrize(
    "model, noise, dose, floor",
    [("pretrained", _cxr_pairs_noise, 1.0, 30.0), ("physical", PhysicalNoiseModel, 0.25, 33.0)],
)
def test_every_view_of_the_shipped_models_scores_alike(model, noise, dose, floor):
    """The 10 embedded sample test radiographs with the model's own degradation simulated (the noise
    model fitted to cxr-pairs; photon noise); each of the 8 dihedral views alone, and their average (``tta=8``)."""
    weights = shipped_weights(model)
    noise = noise()
    high = torch.stack([torch.from_numpy(read_image(path)[0]) for path in list_images(SAMPLE_ROOT / "test")])[:, None]
    low = torch.stack([noise.simulate(h, dose, torch.Generator().manual_seed(i)) for i, h in enumerate(high)])
    net, _ = load_network(weights)
    with torch.no_grad():
        outputs = [DihedralView(net, k)(low) for k in range(8)]
    views = [_psnr(out, high) for out in outputs]
    assert views[0] > max(floor, _psnr(low, high) + 2.0)  # a working model on these images
    assert max(views) - min(views) < 0.3, views  # pretrained without the margin: views 5 and 7 ≈ 26 dB
    assert _psnr(torch.stack(outputs).mean(0), high) > views[0] + 0.1  # so all 8 views are worth averaging


def _psnr(out: torch.Tensor, high: torch.Tensor) -> float:
    return float((-10 * torch.log10(((out.clamp(0, 1) - high) ** 2).mean(dim=(1, 2, 3)))).mean())


def test_predictor_path_carries_the_checkpoints_margin(tmp_path):
    from lightning_modules.inference.backends import choose_path, load_predictor
    from lightning_modules.nets.checkpoints import save_weights

    for hparams, expected in (({"encoder_name": "resnet18"}, DEFAULT_EVAL_MARGIN), ({"eval_margin": 0}, 0)):
        path = save_weights(tmp_path / f"net{expected}.pth", DenoisingUnet(**hparams), hparams)
        net, chosen = load_predictor(path, "cpu", choose_path("torch", "32", "cpu"))
        assert chosen.eval_margin == expected and net.eval_margin == expected
