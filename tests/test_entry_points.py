"""Every entry point runs as a Hydra multirun (``-m``): the config resolvers are registered for all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_paired_dataset

from datamodules.io.images import read_image
from lightning_modules.nets.checkpoints import read_checkpoint
from lightning_modules.runs.folders import PRETRAINED_DIR, PRETRAINED_WEIGHTS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _multirun(script: str, *overrides: str, log_dir: Path) -> Path:
    command = [sys.executable, f"scripts/{script}.py", "-m", f"paths.log_dir={log_dir}", *overrides]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (log_dir / script / "multiruns").iterdir()
    return sweep


def test_denoise_and_export_multiruns(tmp_path):
    paired = make_paired_dataset(tmp_path / "data", {"test": 2}, shape=(64, 64))
    inputs = paired / "test" / "low"
    sweep = _multirun(
        "denoise",
        f"input={inputs}",
        f"output={tmp_path / 'o1'},{tmp_path / 'o2'}",
        "progress=false",
        log_dir=tmp_path / "logs",
    )
    first, second = (read_image(tmp_path / o / "img_0.png")[0] for o in ("o1", "o2"))
    assert np.array_equal(first, second) and first.shape == (64, 64)
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 2  # one folder per job

    _multirun(
        "export",
        f"ckpt={PRETRAINED_DIR / PRETRAINED_WEIGHTS}",
        f"run={PRETRAINED_DIR}",
        f"output={tmp_path / 'e1'},{tmp_path / 'e2'}",
        log_dir=tmp_path / "logs",
    )
    (h1, s1), (h2, s2) = (read_checkpoint(tmp_path / e / PRETRAINED_WEIGHTS) for e in ("e1", "e2"))
    assert h1 == h2 and s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


def test_test_and_report_multiruns(tmp_path):
    paired = make_paired_dataset(tmp_path / "data", {"train": 2, "val": 1, "test": 2}, shape=(64, 64))
    _multirun(
        "test",
        "ckpt=pretrained",
        f"data_root={paired}",
        "split=val,test",
        "write_images=false",
        "device=cpu",
        f"results_dir={tmp_path / 'r'}" + "_${split}",
        log_dir=tmp_path / "logs",
    )
    assert json.loads((tmp_path / "r_val" / "summary.json").read_text())["images"] == 1
    assert json.loads((tmp_path / "r_test" / "summary.json").read_text())["images"] == 2
    _multirun(
        "report",
        "ckpt=pretrained",
        f"data_root={paired}",
        "inputs=paired",
        "baselines=[]",
        "html=false",
        "progress=false",
        "device=cpu",
        "max_images=1,2",
        log_dir=tmp_path / "logs",
    )
    reports = sorted((tmp_path / "logs" / "report" / "multiruns").glob("*/*/summary.json"))
    assert len(reports) == 2
