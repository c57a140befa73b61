"""Faults: resume after SIGKILL, NaN losses, checkpoints that are never half written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_paired_dataset, tiny_train_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_modules.commands.train import train
from lightning_modules.runs.records import config_fingerprint, read_run_info

REPO = Path(__file__).resolve().parents[1]


def _train_command(data: Path, log_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "scripts/train.py",
        "data=pairs",
        f"data.root={data}",
        "data.patch_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.max_epochs=6",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        "~callbacks.image_grid",
        "test=false",
        f"paths.log_dir={log_dir}",
        *extra,
    ]


def _steps(run_dir: Path) -> list[list[int]]:
    """train/loss_step steps of each TensorBoard event file of a run, oldest file first."""
    files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"), key=os.path.getmtime)
    out = []
    for f in files:
        events = EventAccumulator(str(f))
        events.Reload()
        out.append(
            [e.step for e in events.Scalars("train/loss_step")] if "train/loss_step" in events.Tags()["scalars"] else []
        )
    return out


@pytest.mark.e2e
def test_sigkilled_training_resumes_from_its_last_checkpoint(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    log_dir = tmp_path / "logs"
    command = _train_command(data, log_dir)
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    last = None
    while time.time() < deadline and first.poll() is None:
        found = list(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))
        if found:
            last = found[0]
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert last is not None and first.returncode == -signal.SIGKILL, "training ended before it could be killed"
    run_dir = last.parents[1]
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert 0 < saved["global_step"] < 12
    assert not read_run_info(run_dir)["completed"]

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resume=auto: continuing {run_dir} from epoch" in rerun.stderr
    info = read_run_info(run_dir)
    assert info["completed"] and len(info["attempts"]) == 2
    assert info["attempts"][1]["resumed_from"]["global_step"] == saved["global_step"]
    # The rerun's own (empty) Hydra folder points at the run it continued, which gets the job's status.
    job_dirs = [d for d in log_dir.glob("train/runs/*") if (d / "continues_run.txt").is_file()]
    assert len(job_dirs) == 1 and Path((job_dirs[0] / "continues_run.txt").read_text().strip()) == run_dir.resolve()
    assert json.loads((run_dir / "job_status.json").read_text())["status"] == "COMPLETED"
    assert info["data"]["files"] == 12 and len(info["data"]["sha256"]) == 64
    assert info["attempts"][0]["versions"]["torch"] == torch.__version__.split("+")[0]
    assert len(info["attempts"][0]["git"]["commit"]) == 40
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["epoch"] == 5 and final["global_step"] == 12  # 6 epochs x 2 batches, counted once
    # The same TensorBoard folder, the second file continuing where the first stopped.
    steps = [s for s in _steps(run_dir) if s]
    assert len(steps) == 2 and min(steps[1]) >= saved["global_step"] and max(steps[1]) == 11
    # resume=never leaves the finished run alone and starts a new folder.
    fresh = subprocess.run(
        [*command, "resume=never", "trainer.max_epochs=1"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert fresh.returncode == 0 and "resume=auto" not in fresh.stderr
    assert len(list(log_dir.glob("train/runs/*/run_info.json"))) == 2


def test_fingerprint_ignores_output_places_but_not_training_settings(tmp_path):
    a = tiny_train_config(tmp_path / "a")
    b = tiny_train_config(tmp_path / "b", ["resume=never"])
    c = tiny_train_config(tmp_path / "a", ["optim.lr=1e-4"])
    assert config_fingerprint(a) == config_fingerprint(b) != config_fingerprint(c)
    with pytest.raises(ValueError, match="resume='sometimes' is unknown"):
        train(tiny_train_config(tmp_path / "d", ["resume=sometimes"]))


def test_job_status_goes_to_the_run_a_resumed_job_continued(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from lightning_modules.runs.hydra import CONTINUES_FILE, STATUS_FILE, JobStatusRecorder

    job_dir, run_dir = tmp_path / "runs" / "new", tmp_path / "runs" / "old"
    job_dir.mkdir(parents=True)
    run_dir.mkdir()
    (run_dir / STATUS_FILE).write_text(json.dumps({"status": "FAILED", "error": "killed"}))  # the first attempt
    (job_dir / CONTINUES_FILE).write_text(f"{run_dir}\n")
    done = JobReturn(overrides=["name=x"], status=JobStatus.COMPLETED, _return_value={})
    JobStatusRecorder().on_job_end(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job_dir)}}}), done)
    for folder in (job_dir, run_dir):
        record = json.loads((folder / STATUS_FILE).read_text())
        assert record["status"] == "COMPLETED" and "error" not in record and record["overrides"] == ["name=x"]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import lightning_modules.training.module as denoiser

    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    real_build = denoiser.build_loss

    def poisoned(**kwargs):
        loss, calls = real_build(**kwargs), {"n": 0}

        def fn(pred, target):
            calls["n"] += 1
            value = loss(pred, target)
            # One batch per epoch (4 images, batch 4), each followed by one val batch: call 7 is step 3.
            return value * float("nan") if calls["n"] == 7 else value

        return fn

    monkeypatch.setattr(denoiser, "build_loss", poisoned)
    run_dir = tmp_path / "logs" / "train" / "runs" / "r"
    cfg = tiny_train_config(
        run_dir,
        [
            "data=pairs",
            f"data.root={data}",
            "trainer.max_epochs=5",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
        ],
    )
    with pytest.raises(denoiser.NonFiniteLossError, match=r"training loss is nan at step 3 \(epoch 3"):
        train(cfg)
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3 and saved["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert not read_run_info(run_dir)["completed"]


def test_checkpoint_writer_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    import lightning_modules.training.safeguards as safeguards

    path = tmp_path / "last.ckpt"
    io = safeguards.AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def broken(checkpoint, target):
        Path(target).write_bytes(b"half a checkpoi")
        raise OSError("disk full")

    monkeypatch.setattr(safeguards, "_atomic_save", broken)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
