"""A recipe in stages (experiment=pretrained): one command trains each stage from the one before, and a
rerun skips what is done and continues what is not."""

from __future__ import annotations

import json

import pytest
from conftest import compose_config, make_paired_dataset, tiny_train_config
from omegaconf import OmegaConf, open_dict

from datamodules.datamodule import PairedDataModule
from lightning_modules.commands.train import train
from lightning_modules.runs.records import read_run_info
from lightning_modules.training.stages import STAGES_FILE, stage_configs


def test_pretrained_recipe_is_four_cumulative_stages_from_random_weights(tmp_path):
    cfg = compose_config("train", ["experiment=pretrained", "data.root=somewhere"])
    assert cfg.init_weights is None  # from random initialisation: nothing out of git history
    stages = dict(stage_configs(cfg, tmp_path / "run"))
    assert list(stages) == ["l1", "fresh_noise", "progressive", "mse"]
    resolved = {name: OmegaConf.to_container(c, resolve=True) for name, c in stages.items()}
    l1, noise, progressive, mse = resolved.values()
    assert l1["data"].get("train_noise") is None and l1["optim"]["lr"] == 1e-3 and l1["loss"]["name"] == "l1"
    assert noise["data"]["train_noise"]["_target_"] == "datamodules.noise.AffineGaussianNoiseModel"
    assert noise["optim"]["lr"] == 3e-4 and noise["callbacks"]["ema"]["decay"] == 0.999
    # later stages keep what the earlier ones set, and change only their own settings
    assert progressive["data"]["train_noise"] == noise["data"]["train_noise"]
    assert progressive["data"]["patch_schedule"] == [{"start": 0.5, "patch_size": 192, "batch_size": 7}]
    assert mse["data"]["patch_schedule"] is None and mse["loss"]["name"] == "mse" and mse["optim"]["lr"] == 1e-4
    assert mse["data"]["train_noise"] == noise["data"]["train_noise"]
    assert [c["name"] for c in resolved.values()] == [f"pretrained.{s}" for s in stages]
    assert [c["paths"]["output_dir"] for c in resolved.values()] == [
        str(tmp_path / "run" / "stages" / f"{k}_{s}") for k, s in enumerate(stages, start=1)
    ]
    assert all(c["stages"] is None for c in resolved.values())
    total = sum(c["trainer"]["max_epochs"] for c in resolved.values())
    assert total * 190 > 90_000  # about the shipped model's 107 000 steps, 190 a epoch on 3034 pairs


def test_physical_recipe_chains_its_stages_from_the_pretrained_weights(tmp_path):
    cfg = compose_config("train", ["experiment=physical", "data.root=somewhere"])
    assert cfg.init_weights == "pretrained"  # the shipped cxr-pairs weights, committed: nothing out of git history
    stages = {name: OmegaConf.to_container(c, resolve=True) for name, c in stage_configs(cfg, tmp_path / "run")}
    assert list(stages) == [
        "family",
        "second_cycle",
        "low_noise",
        "mse",
        "mse_longer",
        "mse_faster",
        "input_block",
        "input_block_longer",
    ]
    family, second, low_noise, mse, _, faster, block, last = stages.values()
    assert family["optim"]["lr"] == 5e-4 and second["optim"]["lr"] == low_noise["optim"]["lr"] == 3e-4
    assert family["data"]["dose"] == second["data"]["dose"] == [0.02, 1.0] and low_noise["data"]["dose"] == [0.02, 4.0]
    assert second["data"]["noise"]["physical_share"] == 0.55 and low_noise["data"]["noise"]["physical_share"] == 0.5
    assert low_noise["data"]["noise"]["correlated_share"] == family["data"]["noise"]["correlated_share"]
    assert low_noise["loss"]["name"] == "l1" and mse["loss"]["name"] == last["loss"]["name"] == "mse"
    assert mse["optim"]["lr"] == 1e-4 and faster["optim"]["lr"] == last["optim"]["lr"] == 2e-4
    assert last["data"] == low_noise["data"] and not faster["model"]["input_block"] and last["model"]["input_block"]
    assert block["trainer"]["max_epochs"] == 48 and last["trainer"]["max_epochs"] == 54
    # one more stage from the shipped weights takes the last stage's settings
    more = compose_config("train", ["experiment=physical_stage", "data.root=somewhere"])
    assert more.stages is None and more.init_weights == "physical"
    for group in ("data", "optim", "loss", "model"):
        assert OmegaConf.to_container(more[group], resolve=True) == last[group], group
    assert more.trainer.max_epochs == last["trainer"]["max_epochs"] and "ema" in more.callbacks


def test_a_stage_may_not_set_where_it_writes(tmp_path):
    cfg = compose_config("train", ["experiment=pretrained", "data.root=x", "+stages.mse.paths.output_dir=y"])
    with pytest.raises(ValueError, match=r"stages.mse may not set stages, paths or name"):
        stage_configs(cfg, tmp_path)


def _staged_config(run_dir, data):
    cfg = tiny_train_config(run_dir, ["data=pairs", f"data.root={data}", "trainer.max_epochs=1"])
    with open_dict(cfg):
        cfg.paths.log_dir = str(run_dir.parents[2])  # logs/<task>/runs/<run>: where reruns look for stages
        cfg.stages = OmegaConf.create({"first": None, "second": {"loss": {"name": "mse"}, "optim": {"lr": 5e-4}}})
    return cfg


def test_stages_chain_their_weights_and_a_rerun_skips_or_continues(tmp_path):
    data = make_paired_dataset(tmp_path / "dataset", {"train": 4, "val": 2, "test": 2})
    logs = tmp_path / "logs"
    run = logs / "train" / "runs" / "one"
    metrics = train(_staged_config(run, data))
    first, second = run / "stages" / "1_first", run / "stages" / "2_second"
    record = json.loads((run / STAGES_FILE).read_text())
    assert [r["stage"] for r in record] == ["first", "second"]
    assert [r["folder"] for r in record] == [str(first.resolve()), str(second.resolve())]
    assert all(r["steps"] == 1 and r["hours"] > 0 for r in record)
    assert record[1]["test"]["test/psnr"] == pytest.approx(metrics["test/psnr"])
    second_cfg = OmegaConf.load(second / "run_config.yaml")
    assert second_cfg.init_weights == str((first / "checkpoints" / "best.ckpt").resolve())
    assert second_cfg.loss.name == "mse" and OmegaConf.load(first / "run_config.yaml").loss.name == "l1"
    assert not (run / "checkpoints").exists()  # the command's own folder holds the record, the stages the runs

    again = logs / "train" / "runs" / "two"
    assert train(_staged_config(again, data))["test/psnr"] == pytest.approx(metrics["test/psnr"])
    assert not (again / "stages").exists()  # both stages were done: nothing trained again
    assert json.loads((again / STAGES_FILE).read_text())[1]["folder"] == str(second.resolve())

    info = read_run_info(second)  # as if the second stage had been interrupted
    info["completed"] = False
    (second / "run_info.json").write_text(json.dumps(info))
    third = logs / "train" / "runs" / "three"
    train(_staged_config(third, data))
    assert len(read_run_info(second)["attempts"]) == 2 and read_run_info(second)["completed"]
    assert not (third / "stages").exists()  # the unfinished stage continued in its own folder


def test_train_subset_keeps_the_same_pairs_for_every_run(tmp_path):
    data = make_paired_dataset(tmp_path / "dataset", {"train": 6, "val": 1, "test": 1})
    names = [
        [p.high.name for p in PairedDataModule(str(data), train_subset=3, num_workers=0).pairs("train")]
        for _ in range(2)
    ]
    assert names[0] == names[1] and len(set(names[0])) == 3
    assert len(PairedDataModule(str(data), num_workers=0).pairs("train")) == 6
    with pytest.raises(ValueError, match=r"data.train_subset=7 is more than the 6 pairs"):
        PairedDataModule(str(data), train_subset=7, num_workers=0).pairs("train")
    with pytest.raises(ValueError, match=r"data.train_subset must be a positive number"):
        PairedDataModule(str(data), train_subset=0)
