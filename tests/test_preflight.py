"""Bad data stops a training run before its first step: every split in use is paired and fully decoded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_train_config, truncate_file
from PIL import Image

from datamodules.io.pairing import DatasetLayoutError
from datamodules.preflight import decode_all
from lightning_modules.commands.train import train


def colour(path: Path) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(path)


def assert_nothing_trained(run_dir: Path) -> None:
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "tensorboard").exists()


@pytest.mark.parametrize(
    "split, side, damage, reason",
    [
        ("train", "low", truncate_file, "cannot read image"),
        ("val", "high", colour, "colour image"),
        ("test", "high", truncate_file, "cannot read image"),
    ],
)
def test_a_bad_image_in_any_split_is_named_before_training(tmp_path, paired_root, split, side, damage, reason):
    bad = paired_root / split / side / "img_1.png"
    damage(bad)  # the header still reads: listing and pairing alone would not notice
    cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={paired_root}"])
    with pytest.raises(DatasetLayoutError, match=rf"{bad}: {reason}.*checked before training"):
        train(cfg)
    assert_nothing_trained(tmp_path / "run")


def test_test_split_pairing_is_checked_before_training_when_testing(tmp_path, paired_root):
    orphan = paired_root / "test" / "low" / "img_2.png"
    orphan.unlink()
    cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={paired_root}"])
    with pytest.raises(DatasetLayoutError, match=r"test/high/img_2.png: no low-dose partner"):
        train(cfg)
    assert_nothing_trained(tmp_path / "run")
    # test=false: the test split is not used, so it does not stop the run
    cfg = tiny_train_config(
        tmp_path / "run2", ["data=pairs", f"data.root={paired_root}", "test=false", "trainer.max_epochs=1"]
    )
    assert np.isfinite(train(cfg)["val/psnr"])


def test_decode_cache_skips_unchanged_files_and_rechecks_changed_ones(tmp_path, paired_root):
    files = sorted(paired_root.rglob("*.png"))
    cache = tmp_path / "cache" / "decoded.json"
    first = decode_all(files, cache_file=cache, workers=2, progress=False)
    assert (first.checked, first.decoded, first.cached) == (len(files), len(files), 0)
    again = decode_all(files, cache_file=cache, progress=False)
    assert (again.decoded, again.cached) == (0, len(files))
    # a file replaced after the check (new size and time) is decoded again, and found bad
    truncate_file(files[0])
    os.utime(files[0], ns=(1, 1))
    with pytest.raises(DatasetLayoutError, match=rf"{files[0]}: cannot read image"):
        decode_all(files, cache_file=cache, progress=False)
    shutil.copy(files[1], files[0])
    fixed = decode_all(files, cache_file=cache, progress=False)
    assert (fixed.decoded, fixed.cached) == (1, len(files) - 1)


def test_every_bad_file_is_listed_in_one_error(tmp_path, paired_root):
    bad = [paired_root / "train" / "low" / f"img_{k}.png" for k in range(3)]
    for path in bad:
        truncate_file(path)
    (paired_root / "train" / "gone.png").write_bytes(b"")
    with pytest.raises(DatasetLayoutError) as raised:
        decode_all([*sorted(paired_root.rglob("*.png"))], progress=False)
    message = str(raised.value)
    assert message.startswith(f"4 of {len(list(paired_root.rglob('*.png')))} images cannot be used")
    for path in bad:
        assert f"{path}: cannot read image" in message


def test_preflight_can_be_switched_off(tmp_path, paired_root):
    bad = paired_root / "train" / "low" / "img_0.png"
    truncate_file(bad)
    cfg = tiny_train_config(
        tmp_path / "run", ["data=pairs", f"data.root={paired_root}", "test=false", "preflight.decode=false"]
    )
    with pytest.raises(Exception, match=f"{bad}: cannot read image") as raised:
        train(cfg)  # found only when the first batch is loaded
    assert "checked before training" not in str(raised.value)


def test_a_stated_bit_depth_is_checked_before_training(tmp_path, paired_root):
    """data.bit_depth=12 on 16-bit data (values up to 65535): named before the first step, every file
    listed; a cache that knows the files as good under auto decodes them again for 12 bits."""
    files = sorted(paired_root.rglob("*.png"))
    cache = tmp_path / "cache" / "decoded.json"
    assert decode_all(files, cache_file=cache, progress=False).decoded == len(files)
    with pytest.raises(DatasetLayoutError, match=r"do not fit bit_depth=12 \(0..4095\)"):
        decode_all(files, cache_file=cache, progress=False, bit_depth=12)
    cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={paired_root}", "data.bit_depth=12"])
    with pytest.raises(
        DatasetLayoutError,
        match=rf"(?s){len(files)} of {len(files)} images cannot be used.*img_0.png: values up to \d+ do not fit bit_depth=12",
    ):
        train(cfg)
    assert_nothing_trained(tmp_path / "run")
