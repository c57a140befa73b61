"""denoise never writes over or drops an input: own-folder refusal, name clashes, bad files isolated."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config

from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageInfo
from lightning_modules.commands.denoise import denoise, plan_outputs
from lightning_modules.inference.failed_list import FAILED_LIST

REPO = Path(__file__).resolve().parents[1]


def _checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _inputs(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    write_image(folder / "scan.png", rng.random((64, 64)), ImageInfo(16, ".png"))
    write_image(folder / "scan.jpg", rng.random((64, 64)), ImageInfo(8, ".jpg"))
    write_image(folder / "other.png", rng.random((64, 48)), ImageInfo(8, ".png"))
    return folder


def _config(inputs: Path, output: Path, *extra: str):
    return compose_config(
        "denoise", [f"input={inputs}", f"output={output}", "tile=64", "overlap=16", "progress=false", *extra]
    )


@pytest.mark.parametrize("overwrite", ["false", "true"])
def test_output_folder_that_holds_the_inputs_is_refused_and_nothing_changes(tmp_path, overwrite):
    inputs = _inputs(tmp_path / "in")
    before = _checksums(inputs)
    with pytest.raises(ValueError, match=r"output=.*holds the input images .*never writes over its inputs"):
        denoise(_config(inputs, inputs, f"overwrite={overwrite}"))
    with pytest.raises(ValueError, match="never writes over its inputs"):  # the same folder spelled differently
        denoise(_config(inputs / "scan.png", tmp_path / "in" / ".." / "in", f"overwrite={overwrite}"))
    assert _checksums(inputs) == before


def test_inputs_sharing_a_stem_get_one_output_each(tmp_path):
    inputs = _inputs(tmp_path / "in")
    summary = denoise(_config(inputs, tmp_path / "out"))
    assert summary["images"] == 3 and summary["failed"] == 0
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))  # .denoised_by.json
    assert outputs == ["other.png", "scan_jpg.png", "scan_png.png"]
    from_png, info = read_image(tmp_path / "out" / "scan_png.png")
    assert info.bit_depth == 16 and from_png.shape == (64, 64)
    plan = dict(plan_outputs([inputs / "a.png", inputs / "b.png"], tmp_path / "o", True))
    assert plan[inputs / "a.png"].name == "a.png"  # no clash: names stay as they are


def test_an_unreadable_image_is_listed_and_the_others_are_written(tmp_path):
    inputs = _inputs(tmp_path / "in")
    good = (inputs / "other.png").read_bytes()
    (inputs / "broken.png").write_bytes(good[: len(good) // 3])  # truncated
    summary = denoise(_config(inputs, tmp_path / "out"))
    assert summary["images"] == 3 and summary["failed"] == 1
    failed = (tmp_path / "out" / FAILED_LIST).read_text()
    assert failed.startswith(str(inputs / "broken.png")) and "\t" in failed
    assert {"other.png", "scan_jpg.png", "scan_png.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    (inputs / "broken.png").write_bytes(good)  # repaired: a rerun does just that one and clears the list
    again = denoise(_config(inputs, tmp_path / "out"))
    assert again["images"] == 1 and again["skipped"] == 3 and again["failed"] == 0
    assert not (tmp_path / "out" / FAILED_LIST).exists()


@pytest.mark.e2e
def test_script_exits_1_when_an_image_failed(tmp_path):
    inputs = _inputs(tmp_path / "in")
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    result = subprocess.run(
        [
            sys.executable,
            "scripts/denoise.py",
            f"input={inputs}",
            f"output={tmp_path / 'out'}",
            "progress=false",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "1 failed" in result.stderr and len(list((tmp_path / "out").glob("*.png"))) == 3
