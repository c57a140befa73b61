"""denoise.py's inputs and outputs: failed files named, trees mirrored, the model recorded, a full disk
and odd paths said in one line."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config

from datamodules.io.atomic import atomic_write
from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageInfo
from lightning_modules.commands.denoise import denoise
from lightning_modules.commands.errors import check_command_line, is_project_check
from lightning_modules.inference.failed_list import FAILED_LIST
from lightning_modules.inference.outputs import MODEL_RECORD
from lightning_modules.runs.disk import DiskFullError
from lightning_modules.runs.folders import PRETRAINED_DIR, PRETRAINED_WEIGHTS

REPO = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every image file below ``folder``."""
    return {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*.png"))}


def _image(path: Path, seed: int, shape=(64, 64)) -> Path:
    write_image(path, np.random.default_rng(seed).random(shape), ImageInfo(16, ".png"))
    return path


def _run(inputs, output, *extra):
    overrides = [f"input={inputs}", f"output={output}", "tile=64", "overlap=16", "progress=false", *extra]
    return denoise(compose_config("denoise", overrides))


def test_every_failed_file_is_named_on_stderr_then_the_list(tmp_path, capsys):
    inputs = tmp_path / "in"
    _image(inputs / "good.png", 0)
    for k in range(12):
        (inputs / f"cut_{k:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    summary = _run(inputs, tmp_path / "out")
    assert summary["images"] == 1 and summary["failed"] == 12
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("failed", "12 failed"))]
    assert len(lines) == 11  # the first ten, then the count and the list
    for k, line in enumerate(lines[:10]):
        assert line.startswith(f"failed: {inputs / f'cut_{k:02d}.png'}: cannot read image (")
    assert lines[10] == f"12 failed (2 more not shown): all are listed in {tmp_path / 'out' / FAILED_LIST}"
    assert len((tmp_path / "out" / FAILED_LIST).read_text().splitlines()) == 12


def test_recursive_mirrors_the_tree_and_a_flat_call_names_the_subfolders(tmp_path):
    root = tmp_path / "export"
    files = [root / "P1" / "S1" / "a.png", root / "P1" / "S2" / "b.png", root / "P2" / "c.png"]
    for k, path in enumerate(files):
        _image(path, k)
    before = _tree(root)
    with pytest.raises(FileNotFoundError) as caught:
        _run(root, tmp_path / "out")
    assert str(caught.value) == (
        f"input={root}: no PNG, JPEG, TIFF or DICOM images directly in this folder, but 3 of its subfolders "
        f"hold 3 (e.g. {files[0]}); pass recursive=true to denoise them into the same tree under output"
    )
    summary = _run(root, tmp_path / "out", "recursive=true")
    assert summary["images"] == 3
    mirrored = _tree(tmp_path / "out")
    assert sorted(mirrored) == ["P1/S1/a.png", "P1/S2/b.png", "P2/c.png"]
    # Each equals the same file denoised on its own (written as a named output file).
    for path in files:
        single = tmp_path / "single" / f"{path.stem}.png"
        assert _run(path, single)["images"] == 1 and single.is_file()
        assert mirrored[path.relative_to(root).as_posix()] == _sha(single)
    # An output folder inside the tree is not read back as input on a rerun.
    inside = _run(root, root / "denoised", "recursive=true")
    assert inside["images"] == 3 and _tree(root / "denoised") == mirrored
    again = _run(root, root / "denoised", "recursive=true")
    assert again["images"] == 0 and again["skipped"] == 3
    assert {k: v for k, v in _tree(root).items() if not k.startswith("denoised/")} == before


def test_a_missing_path_does_not_exist_and_a_file_name_output_is_a_file(tmp_path):
    _image(tmp_path / "in" / "scan.png", 0)
    with pytest.raises(FileNotFoundError) as caught:
        _run(tmp_path / "in" / "scna.png", tmp_path / "out")
    assert str(caught.value) == f"input={tmp_path / 'in' / 'scna.png'}: does not exist ({tmp_path / 'in'} exists)"
    with pytest.raises(ValueError, match=r"output=.*denoised.png: looks like an image file name, but input="):
        _run(tmp_path / "in", tmp_path / "denoised.png")
    assert not (tmp_path / "denoised.png").exists()  # no folder of that name either
    with pytest.raises(ValueError, match=r"another format than input=.*name it denoised.png"):
        _run(tmp_path / "in" / "scan.png", tmp_path / "denoised.tif")
    summary = _run(tmp_path / "in" / "scan.png", tmp_path / "denoised.png")
    assert summary["images"] == 1 and (tmp_path / "denoised.png").is_file()
    image, info = read_image(tmp_path / "denoised.png")
    assert image.shape == (64, 64) and info.bit_depth == 16


def _other_model(path: Path) -> Path:
    """The shipped weights with one bias changed: another model, the same network."""
    from lightning_modules.nets.checkpoints import read_checkpoint

    hparams, state = read_checkpoint(PRETRAINED_DIR / PRETRAINED_WEIGHTS)
    key = next(k for k in state if k.endswith("bias"))
    state[key] = state[key] + 0.05
    torch.save({"state_dict": state, "hparams": hparams}, path)
    return path


def test_the_model_is_recorded_and_another_one_refuses_unless_overwrite(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(2):
        _image(inputs / f"s{k}.png", k)
    other = _other_model(tmp_path / "other.pth")
    shipped = (PRETRAINED_DIR / PRETRAINED_WEIGHTS).resolve()
    assert _run(inputs, out)["images"] == 2
    record = json.loads((out / MODEL_RECORD).read_text())
    assert record["checkpoint"] == str(shipped) and record["sha256"] == _sha(shipped)
    assert record["settings"] == {
        "tta": 1,
        "overlap": 16,
        "tile_margin": 5,
        "precision": record["settings"]["precision"],
    }
    first = _tree(out)
    with pytest.raises(ValueError) as caught:
        _run(inputs, out, f"ckpt={other}")
    message = str(caught.value)
    assert message.startswith(
        f"output={out}: holds the outputs of {shipped} (sha256 {_sha(shipped)[:12]}, overlap=16, precision="
    )
    assert f", not of {other.resolve()} (sha256 {_sha(other)[:12]}, " in message
    assert message.endswith("pass overwrite=true to redo them with this model, or choose another output folder")
    assert is_project_check(caught.value) and _tree(out) == first
    with pytest.raises(ValueError, match=r"tta=1.*not of .*tta=4"):  # other settings count too
        _run(inputs, out, "tta=true")
    redone = _run(inputs, out, f"ckpt={other}", "overwrite=true")
    assert redone["images"] == 2 and redone["skipped"] == 0
    second = _tree(out)
    assert all(second[name] != first[name] for name in first)
    assert json.loads((out / MODEL_RECORD).read_text())["sha256"] == _sha(other)
    # An overwrite=true run interrupted before s1.png: s1.png is older than the switch, so a plain rerun
    # with the new model redoes it instead of calling it done.
    since = json.loads((out / MODEL_RECORD).read_text())["since"]
    os.utime(out / "s1.png", (since - 60, since - 60))
    finish = _run(inputs, out, f"ckpt={other}")
    assert finish["images"] == 1 and finish["skipped"] == 1 and _tree(out) == second
    assert _run(inputs, out, f"ckpt={other}")["images"] == 0  # the same model again: all done


def test_a_full_disk_while_writing_an_output_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import lightning_modules.commands.denoise as module

    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(3):
        _image(inputs / f"s{k}.png", k)
    real_write, calls = module.write_image, []

    def full_after_one(path, array, info=None):
        calls.append(path)
        if len(calls) == 1:
            return real_write(path, array, info)

        def half(tmp):
            Path(tmp).write_bytes(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")

        return atomic_write(path, half)

    monkeypatch.setattr(module, "write_image", full_after_one)
    with pytest.raises(DiskFullError) as caught:
        _run(inputs, out)
    assert str(caught.value).startswith(f"{out / 's1.png'}: no space left on device (1 of 3 images written, each whole")
    assert "each whole; free some space and run the same command again" in str(caught.value)
    assert "\n" not in str(caught.value) and is_project_check(caught.value)
    assert sorted(p.name for p in out.iterdir()) == [MODEL_RECORD, "s0.png"]  # no .part file, no s1.png
    assert read_image(out / "s0.png")[0].shape == (64, 64)


def test_a_file_that_is_not_a_checkpoint_is_one_line_without_torch_advice(tmp_path):
    _image(tmp_path / "in" / "scan.png", 0)
    (tmp_path / "notes.ckpt").write_text("not a model\n")
    with pytest.raises(ValueError) as caught:
        _run(tmp_path / "in", tmp_path / "out", f"ckpt={tmp_path / 'notes.ckpt'}")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'notes.ckpt'}: not a checkpoint of this project, torch cannot read it (")
    assert "\n" not in message and "weights_only" not in message and "file an issue" not in message


def test_a_value_hydra_cannot_read_shows_the_quoting_that_works(capsys):
    check_command_line(["input='/data/scan 1 (copy).png'", "output=/tmp/o", "-m", "tta=4,8"])  # all fine
    with pytest.raises(SystemExit) as caught:
        check_command_line(["input=/data/scan 1 (copy).png", "output=/tmp/o"])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: input=/data/scan 1 (copy).png: Hydra cannot read")
    assert err.rstrip().endswith("""quote it for Hydra inside the shell's quotes: "input='/data/scan 1 (copy).png'\"""")


@pytest.mark.parametrize("script", ["train", "denoise", "test", "report"])
def test_every_script_that_takes_paths_checks_the_command_line_first(script):
    source = (REPO / "scripts" / f"{script}.py").read_text()
    main_block = source.split('if __name__ == "__main__":', 1)[1]
    assert "check_command_line()" in main_block  # before Hydra parses: one line with the quoting that works
    assert main_block.index("check_command_line()") < main_block.index("main()")


@pytest.mark.e2e
@pytest.mark.parametrize("script", ["test", "report"])
def test_test_and_report_scripts_hint_at_quoting(tmp_path, script):
    run = subprocess.run(
        [sys.executable, f"scripts/{script}.py", f"run={tmp_path}/run 1 (copy)"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr and "LexerNoViableAlt" not in run.stderr
    assert run.stderr.strip().endswith(f"\"run='{tmp_path}/run 1 (copy)'\"")


@pytest.mark.e2e
def test_denoise_script_hints_at_quoting_and_names_failed_files(tmp_path):
    _image(tmp_path / "in" / "good.png", 0)
    (tmp_path / "in" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    base = [sys.executable, "scripts/denoise.py", f"paths.log_dir={tmp_path / 'logs'}", "progress=false"]
    quoted = subprocess.run(
        [*base, f"input={tmp_path}/scan 1 (copy).png", "output=o"], cwd=REPO, capture_output=True, text=True
    )
    assert quoted.returncode == 1 and "Traceback" not in quoted.stderr and "LexerNoViableAlt" not in quoted.stderr
    assert quoted.stderr.strip().endswith(f"\"input='{tmp_path}/scan 1 (copy).png'\"")
    run = subprocess.run(
        [*base, f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"failed: {tmp_path / 'in' / 'cut.png'}: cannot read image (" in run.stderr
    assert f"1 failed: all are listed in {tmp_path / 'out' / FAILED_LIST}" in run.stderr
