"""One run folder per training, one process per run folder, and a training that ends in one line when
the disk is full or Ctrl+C is pressed."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from conftest import compose_config, make_paired_dataset, tiny_train_config
from omegaconf import OmegaConf

from lightning_modules.commands.errors import is_project_check
from lightning_modules.commands.train import train
from lightning_modules.runs.disk import DiskFullError
from lightning_modules.runs.folders import RUN_CONFIG
from lightning_modules.runs.hydra import STATUS_FILE
from lightning_modules.runs.lock import LOCK_FILE, RunLock, RunLockedError
from lightning_modules.runs.records import RUN_INFO, config_fingerprint

REPO = Path(__file__).resolve().parents[1]
HOLD_LOCK = (
    "import sys, time\n"
    "from lightning_modules.runs.lock import RunLock\n"
    "RunLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(120)\n"
)


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2025, 1, 2, 3, 4, 5, tzinfo=tz)


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    import hydra.core.utils

    monkeypatch.setattr(hydra.core.utils, "datetime", _FrozenClock)  # Hydra's ${now:} resolver
    folders = []
    for _ in range(2):
        hydra.core.utils.setup_globals()
        cfg = compose_config("train", [f"paths.log_dir={tmp_path}"], hydra_config=True)
        folders.append(Path(cfg.hydra.run.dir))
        assert Path(cfg.hydra.run.dir) == folders[-1]  # resolved again: the same folder, not a third one
    assert folders == [tmp_path / "train/runs/2025-01-02_03-04-05", tmp_path / "train/runs/2025-01-02_03-04-05_1"]
    assert all(f.is_dir() for f in folders)
    sweep = [compose_config("train", [f"paths.log_dir={tmp_path}"], hydra_config=True).hydra.sweep.dir for _ in "ab"]
    assert sweep == [
        str(tmp_path / "train/multiruns/2025-01-02_03-04-05"),
        str(tmp_path / "train/multiruns/2025-01-02_03-04-05_1"),
    ]


def _unfinished_run(cfg, run_dir: Path) -> Path:
    """A run folder that resume=auto would continue: same name and fingerprint, unfinished, a last.ckpt."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not read before the lock")
    OmegaConf.save(cfg, run_dir / RUN_CONFIG)
    info = {"name": cfg.get("name"), "config_fingerprint": config_fingerprint(cfg), "attempts": [], "completed": False}
    (run_dir / RUN_INFO).write_text(json.dumps(info))
    return run_dir


def _hold_lock(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_resume_auto_refuses_a_run_another_process_trains_and_a_dead_holder_does_not_block(tmp_path):
    cfg = tiny_train_config(tmp_path / "logs" / "new")
    old = _unfinished_run(cfg, tmp_path / "logs" / "train" / "runs" / "2025-01-02_03-04-05")
    holder = _hold_lock(old)
    try:
        with pytest.raises(RunLockedError) as caught:
            train(tiny_train_config(tmp_path / "logs" / "new"))
        message = str(caught.value)
        assert message.startswith(f"{old} is being trained by process {holder.pid} (started 20")
        assert message.endswith("; wait for it to end, or use resume=never to start a new run")
        assert is_project_check(caught.value)  # printed as one line: error: <message>
        assert not (tmp_path / "logs" / "new" / RUN_CONFIG).exists()  # nothing started beside it
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing anything: its lock went with it.
    with RunLock(old) as lock:
        assert lock.held and json.loads((old / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert (old / LOCK_FILE).read_text() == ""  # released: no holder recorded


def test_a_run_lock_is_exclusive_and_released_when_training_fails(tmp_path):
    run_dir = tmp_path / "logs" / "train" / "runs" / "r"
    first = RunLock(run_dir).acquire()
    with pytest.raises(RunLockedError, match=rf"is being trained by process {os.getpid()} "):
        RunLock(run_dir).acquire()  # another descriptor, even in this process
    first.release()
    cfg = tiny_train_config(run_dir, ["data.root=" + str(tmp_path / "missing"), "resume=never"])
    with pytest.raises(Exception, match="missing"):
        train(cfg)  # fails after taking the lock
    RunLock(run_dir).acquire().release()  # free again


def test_ctrl_c_writes_interrupted_status_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import lightning as L
    from lightning.pytorch.trainer.states import TrainerStatus

    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    run_dir = tmp_path / "logs" / "train" / "runs" / "r"

    def interrupted_fit(self, *args, **kwargs):  # what Lightning does on SIGINT: shut down, then sys.exit(1)
        self.state.status = TrainerStatus.INTERRUPTED
        sys.exit(1)

    monkeypatch.setattr(L.Trainer, "fit", interrupted_fit)
    with pytest.raises(SystemExit) as caught:
        train(tiny_train_config(run_dir, ["data=pairs", f"data.root={data}"]))
    assert caught.value.code == 130
    status = json.loads((run_dir / STATUS_FILE).read_text())
    assert status["status"] == "INTERRUPTED" and status["error"] == "KeyboardInterrupt: interrupted (SIGINT)"
    err = capsys.readouterr().err
    assert f"interrupted before the first checkpoint of {run_dir}; the same command starts afresh" in err
    RunLock(run_dir).acquire().release()  # released on the way out


def test_training_refuses_to_start_without_room_for_its_checkpoints(tmp_path, monkeypatch):
    import lightning_modules.training.safeguards as safeguards

    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    run_dir = tmp_path / "logs" / "train" / "runs" / "r"
    monkeypatch.setattr(safeguards, "free_bytes", lambda path: 5 * 2**20)
    with pytest.raises(DiskFullError) as caught:
        train(tiny_train_config(run_dir, ["data=pairs", f"data.root={data}"]))
    assert str(caught.value).startswith(f"{run_dir}: no space left on device for this run's checkpoints (5 MB free, ")
    assert is_project_check(caught.value)
    assert not (run_dir / RUN_CONFIG).exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310"),
    ],
    ids=["enospc", "torch_writer"],
)
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_old_one(tmp_path, monkeypatch, failure):
    import lightning_modules.runs.disk as disk
    import lightning_modules.training.safeguards as safeguards

    path = tmp_path / "last.ckpt"
    io = safeguards.AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def full(checkpoint, target):
        Path(target).write_bytes(b"half a checkpoi")
        raise failure

    monkeypatch.setattr(safeguards, "_atomic_save", full)
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(DiskFullError) as caught:
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    assert str(caught.value) == (
        f"{path}: no space left on device (saving a checkpoint; the previous one is kept; 0 B free, needs about 4 kB); "
        "free some space and run the same command again to continue"
    )
    assert caught.value.errno == errno.ENOSPC and is_project_check(caught.value)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_checkpoint_save_that_fails_otherwise_keeps_its_own_error(tmp_path, monkeypatch):
    import lightning_modules.training.safeguards as safeguards

    def broken(checkpoint, target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(safeguards, "_atomic_save", broken)  # plenty of room: not a full disk
    with pytest.raises(RuntimeError, match="unexpected pos") as caught:
        safeguards.AtomicCheckpointIO().save_checkpoint({"step": 2}, tmp_path / "last.ckpt")
    assert not isinstance(caught.value, DiskFullError)


@pytest.mark.e2e
def test_sigint_during_training_records_interrupted_and_the_rerun_resumes(tmp_path):
    from test_faults import _train_command

    data = make_paired_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    log_dir = tmp_path / "logs"
    command = _train_command(data, log_dir)
    # pytest started as a shell's background job ignores SIGINT, and children inherit that: reset it
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    first = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    deadline = time.time() + 300
    while (
        time.time() < deadline and first.poll() is None and not list(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))
    ):
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-2000:]
    run_dir = next(log_dir.glob("train/runs/*/checkpoints/last.ckpt")).parents[1]
    assert json.loads((run_dir / STATUS_FILE).read_text())["status"] == "INTERRUPTED"
    assert f"interrupted: {run_dir / 'checkpoints' / 'last.ckpt'} holds epoch " in err
    assert "run the same command again to continue from it (resume=auto)" in err
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resume=auto: continuing {run_dir} from epoch" in rerun.stderr, rerun.stderr[-2000:]
