"""callbacks=ema: validation, checkpoints and best_model.pth all carry the averaged weights."""

from __future__ import annotations

import torch
from conftest import tiny_train_config

from lightning_modules.training.train import train


def test_ema_weights_are_what_is_validated_and_saved(tmp_path, paired_root):
    run_dir = tmp_path / "run"
    cfg = tiny_train_config(
        run_dir,
        [
            "data=pairs",
            f"data.root={paired_root}",
            "callbacks=ema",
            "callbacks.ema.decay=0.5",
            "callbacks.ema.update_starting_at_step=0",
            "trainer.max_epochs=3",
            "test=false",
        ],
    )
    train(cfg)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    averaged = {k.removeprefix("net."): v for k, v in best["state_dict"].items() if k.startswith("net.")}
    raw = {k.removeprefix("net."): v for k, v in best["current_model_state"].items() if k.startswith("net.")}
    exported = torch.load(run_dir / "checkpoints" / "best_model.pth", weights_only=True)["state_dict"]
    assert exported.keys() == averaged.keys()
    for key, value in averaged.items():  # best_model.pth is the averaged network, not the raw one
        assert torch.equal(exported[key], value), key
    differing = [k for k, v in averaged.items() if v.is_floating_point() and not torch.allclose(v, raw[k])]
    assert len(differing) > len(averaged) // 2  # the average really differs from the raw weights
