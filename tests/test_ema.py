"""callbacks=ema: validation, checkpoints and best_model.pth all carry the averaged weights."""

from __future__ import annotations

import torch
from conftest import tiny_train_config

from datamodules.datamodule import PairedDataModule
from lightning_modules.commands.train import train
from lightning_modules.nets.checkpoints import build_network, load_network
from lightning_modules.nets.metrics import image_metrics


def _ema_config(run_dir, paired_root, test: bool):
    """Three tiny epochs with a fast average (decay 0.5 from the first step), so it differs from the raw weights."""
    overrides = ["data=pairs", f"data.root={paired_root}", "callbacks=ema", "callbacks.ema.decay=0.5"]
    overrides += ["callbacks.ema.update_starting_at_step=0", "trainer.max_epochs=3", f"test={str(test).lower()}"]
    return tiny_train_config(run_dir, overrides)


def test_ema_weights_are_what_is_validated_and_saved(tmp_path, paired_root):
    run_dir = tmp_path / "run"
    train(_ema_config(run_dir, paired_root, test=False))
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    averaged = {k.removeprefix("net."): v for k, v in best["state_dict"].items() if k.startswith("net.")}
    raw = {k.removeprefix("net."): v for k, v in best["current_model_state"].items() if k.startswith("net.")}
    exported = torch.load(run_dir / "checkpoints" / "best_model.pth", weights_only=True)["state_dict"]
    assert exported.keys() == averaged.keys()
    for key, value in averaged.items():  # best_model.pth is the averaged network, not the raw one
        assert torch.equal(exported[key], value), key
    differing = [k for k, v in averaged.items() if v.is_floating_point() and not torch.allclose(v, raw[k])]
    assert len(differing) > len(averaged) // 2  # the average really differs from the raw weights


def _test_psnr(net: torch.nn.Module, datamodule) -> float:
    with torch.no_grad():
        values = [
            image_metrics(net(s["low"][None]), s["high"][None])["psnr"].item() for s in datamodule.dataset("test")
        ]
    return sum(values) / len(values)


def test_the_runs_own_test_scores_the_averaged_weights(tmp_path, paired_root):
    run_dir = tmp_path / "run"
    metrics = train(_ema_config(run_dir, paired_root, test=True))
    best = run_dir / "checkpoints" / "best.ckpt"
    averaged, hparams = load_network(best)
    raw_state = {
        k.removeprefix("net."): v
        for k, v in torch.load(best, weights_only=True)["current_model_state"].items()
        if k.startswith("net.")
    }
    raw = build_network(hparams, raw_state)
    datamodule = PairedDataModule(str(paired_root), num_workers=0)
    datamodule.setup("test")
    expected, raw_psnr = _test_psnr(averaged, datamodule), _test_psnr(raw, datamodule)
    assert abs(expected - raw_psnr) > 0.05  # the two weight sets score apart, so the check can fail
    # the run tests in the trainer's precision (bf16 where native), this check in fp32
    assert abs(metrics["test/psnr"] - expected) < abs(expected - raw_psnr) / 10
