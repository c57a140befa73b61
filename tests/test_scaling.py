"""Scaling out: two-process CPU DDP, the ddp-in-multirun guard, Optuna on submitit-local, parallel multirun
jobs (joblib), fine-tuning."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose_config, make_paired_dataset, tiny_train_config
from omegaconf import OmegaConf

from datamodules.datamodule import worker_start_method
from lightning_modules.commands.train import train
from lightning_modules.nets.checkpoints import load_weights_into, read_checkpoint
from lightning_modules.nets.unet import DenoisingUnet
from lightning_modules.runs.folders import PRETRAINED_DIR, PRETRAINED_WEIGHTS
from lightning_modules.training import distributed

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data=pairs",
    "data.patch_size=32",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "~callbacks.image_grid",
]


def _run(args: list[str], timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.e2e
def test_two_process_cpu_ddp_trains_and_rank_zero_alone_writes_and_tests(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 3})
    done = _run(["trainer=ddp_cpu", *TINY, f"data.root={data}", f"paths.log_dir={tmp_path / 'logs'}"])
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "MEMBER: 2/2" in out  # two processes joined one gloo group
    assert "terminate called" not in out
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 ran the script in the same folder
    info = json.loads((run_dir / "run_info.json").read_text())
    assert len(info["attempts"]) == 1 and info["completed"]  # written once, by rank 0
    assert json.loads((run_dir / "job_status.json").read_text())["status"] == "COMPLETED"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert "test split, 3 images, best.ckpt" in out  # every test image once, on one device
    assert out.count("test split, ") == 1


def test_ddp_inside_a_multirun_is_refused_unless_the_ranks_start_another_way(monkeypatch):
    monkeypatch.setattr(distributed, "_in_multirun", lambda: True)
    monkeypatch.setattr(distributed, "_ranks_started_externally", lambda: False)
    cfg = compose_config("train", ["trainer=ddp_cpu"])
    with pytest.raises(ValueError, match=r"trainer.strategy=ddp cannot run inside a multirun .*ddp_spawn"):
        distributed.check_distributed_launch(cfg)
    for allowed in (["trainer=ddp_cpu", "trainer.strategy=ddp_spawn"], ["trainer=ddp_cpu", "trainer.devices=1"], []):
        distributed.check_distributed_launch(compose_config("train", allowed))
    monkeypatch.setattr(distributed, "_ranks_started_externally", lambda: True)  # SLURM tasks, torchrun
    distributed.check_distributed_launch(cfg)


def test_a_strategy_given_as_a_config_node_is_classified_by_its_start_method():
    ddp = OmegaConf.create({"_target_": "lightning.pytorch.strategies.DDPStrategy"})
    spawn = OmegaConf.create({"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "spawn"})
    assert distributed._reruns_command_line(ddp) and distributed._reruns_command_line("ddp")
    assert not distributed._reruns_command_line(spawn) and not distributed._reruns_command_line("ddp_spawn")
    assert not distributed._reruns_command_line("auto")
    assert not distributed._in_multirun()  # plain Python: no Hydra run at all


@pytest.mark.e2e
def test_optuna_search_on_submitit_local_survives_a_crashing_trial(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 3})
    probe = tmp_path / "conf" / "hparams_search" / "crash_probe.yaml"
    probe.parent.mkdir(parents=True)
    probe.write_text(  # the shipped search; two trials: an invalid lr first (seed 0), then a valid one
        "# @package _global_\ndefaults:\n  - optuna\n  - override /hydra/sweeper/sampler: random\n"
        "hydra:\n  sweeper:\n    n_trials: 2\n    sampler:\n      seed: 0\n    params:\n"
        "      optim.lr: choice(0.001, -1.0)\n"
        "      optim.weight_decay: choice(0.0001)\n      loss: choice(l1)\n"
    )
    done = _run(
        [
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            "hparams_search=crash_probe",
            "hydra/launcher=submitit_local",
            *TINY,
            f"data.root={data}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ]
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (sweep,) = (tmp_path / "logs" / "search" / "multiruns").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_params"]["optim.lr"] == 0.001
    assert result["best_value"] > 0
    jobs = {json.loads((job / "job_status.json").read_text())["status"]: job for job in sweep.glob("[0-9]*")}
    assert set(jobs) == {"FAILED", "COMPLETED"} and jobs["FAILED"].name.startswith("0_")  # went on after it
    failed = json.loads((jobs["FAILED"] / "job_status.json").read_text())
    assert "optim.lr must be > 0" in failed["error"]
    assert "hparams_search" not in jobs["COMPLETED"].name  # the folder names only what differs
    assert json.loads((jobs["COMPLETED"] / "run_info.json").read_text())["completed"]


@pytest.mark.e2e
def test_parallel_launcher_runs_multirun_jobs_at_once_with_data_loader_workers(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 3})
    tiny = [arg for arg in TINY if not arg.startswith("data.num_workers")]
    done = _run(
        ["-m", "hydra/launcher=parallel", *tiny, "data.num_workers=1", f"data.root={data}",
         f"paths.log_dir={tmp_path / 'logs'}", "loss=l1,mse"]
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    jobs = sorted(sweep.glob("[0-9]*"))
    statuses = [json.loads((job / "job_status.json").read_text()) for job in jobs]
    assert [status["status"] for status in statuses] == ["COMPLETED", "COMPLETED"]
    losses = [[o for o in status["overrides"] if o.startswith("loss=")] for status in statuses]
    assert losses == [["loss=l1"], ["loss=mse"]]
    spans = []
    for job in jobs:
        assert (job / "checkpoints" / "best.ckpt").is_file()
        (attempt,) = json.loads((job / "run_info.json").read_text())["attempts"]
        spans.append((attempt["started"], attempt["completed"]))
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a  # the two jobs overlapped: they ran at once


def test_data_loader_workers_start_the_standard_way_inside_a_pool_with_its_own_start_method(monkeypatch):
    assert worker_start_method() is None  # a plain process keeps its default
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "loky")
    assert worker_start_method() == multiprocessing.get_all_start_methods()[0]
    assert worker_start_method() in ("fork", "spawn", "forkserver")


def test_init_weights_starts_from_the_shipped_model_and_checks_the_network(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 2})
    shipped = PRETRAINED_DIR / PRETRAINED_WEIGHTS
    hparams, state = read_checkpoint(shipped)
    cfg = tiny_train_config(
        tmp_path / "run",
        [
            "data=pairs",
            f"data.root={data}",
            "init_weights=pretrained",
            "optim.lr=1e-12",
            "optim.weight_decay=0",
            "trainer.max_epochs=1",
            "test=false",
            *(f"model.{k}={hparams[k]}" for k in ("norm", "residual")),
        ],
    )
    train(cfg)
    _, trained = read_checkpoint(tmp_path / "run" / "checkpoints" / "best_model.pth")
    parameters = [
        name for name, _ in DenoisingUnet(norm=hparams["norm"], residual=hparams["residual"]).named_parameters()
    ]
    # a learning rate of 1e-12 leaves the weights where they started: at the shipped model's
    assert max((trained[k] - state[k]).abs().max().item() for k in parameters) < 1e-6

    other = DenoisingUnet(norm="group", residual=hparams["residual"])
    with pytest.raises(
        ValueError, match=r"init_weights=.*a different network \(norm: 'batch' in the checkpoint, 'group'"
    ):
        load_weights_into(other, shipped, {**hparams, "norm": "group"}, "init_weights")
    assert not torch.equal(other.state_dict()[parameters[0]], state[parameters[0]])
