"""One unreadable image in test.py or report.py: named in failed.txt, the others evaluated, exit code 1."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from conftest import compose_config, make_paired_dataset, truncate_file, write_untrained_run

from lightning_modules.commands.evaluate import evaluate
from lightning_modules.commands.report import report
from lightning_modules.inference.failed_list import FAILED_LIST


@pytest.fixture
def run(tmp_path) -> tuple[Path, Path]:
    """A paired dataset (2 train, 3 test) and a run folder with an untrained tiny network."""
    data = make_paired_dataset(tmp_path / "data", {"train": 2, "test": 3})
    data_cfg = {"_target_": "datamodules.datamodule.PairedDataModule", "root": str(data)}
    return write_untrained_run(tmp_path / "run", data_cfg), data


def test_test_script_evaluates_the_others_and_lists_the_unreadable_image(run, tmp_path):
    run_dir, data = run
    bad = data / "test" / "low" / "img_1.png"
    good = bad.read_bytes()
    checksum = truncate_file(bad)
    results = tmp_path / "results"
    overrides = [f"run={run_dir}", f"ckpt={run_dir / 'checkpoints' / 'best_model.pth'}", f"results_dir={results}"]
    summary = evaluate(compose_config("test", overrides))
    assert summary["images"] == 2 and [f["file"] for f in summary["failed"]] == [str(bad)]
    assert [row["file"] for row in csv.DictReader((results / "metrics.csv").open())] == ["img_0.png", "img_2.png"]
    assert sorted(p.name for p in (results / "images").iterdir()) == ["img_0.png", "img_2.png"]
    listed = (results / FAILED_LIST).read_text()
    assert listed.startswith(f"{bad}\t{bad}: cannot read image")
    assert json.loads((results / "summary.json").read_text())["failed"][0]["file"] == str(bad)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == checksum  # the input is left as it was
    bad.write_bytes(good)  # fixed: the rerun evaluates all three and drops the stale list
    assert evaluate(compose_config("test", overrides))["images"] == 3
    assert not (results / FAILED_LIST).exists()


def test_report_covers_the_readable_images_and_lists_the_unreadable_one(run, tmp_path):
    run_dir, data = run
    bad = data / "test" / "high" / "img_0.png"
    truncate_file(bad)
    out = tmp_path / "report"
    cfg = compose_config(
        "report",
        [
            f"run={run_dir}",
            f"ckpt={run_dir / 'checkpoints' / 'best_model.pth'}",
            f"out_dir={out}",
            "progress=false",
            "device=cpu",
            "baselines=[]",
            "html=false",
            "doses=[0.5]",
        ],
    )
    summary = report(cfg)
    assert summary["images"] == 2 and summary["files"] == ["img_1.png", "img_2.png"]
    [failure] = summary["failed"]
    assert failure["file"] == str(bad) and failure["reason"].startswith(f"{bad}: cannot read image")
    assert (out / FAILED_LIST).read_text().startswith(f"{bad}\t{bad}: cannot read image")
    assert {row["file"] for row in csv.DictReader((out / "metrics.csv").open())} == {"img_1.png", "img_2.png"}
    assert "1 image(s) could not be read" in (out / "report.md").read_text()
