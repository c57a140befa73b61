import numpy as np
import pytest
import torch

from datamodules.datamodule import PairedDataModule, SimulatedDataModule
from datamodules.io.images import write_image
from datamodules.io.pairing import DatasetLayoutError, find_pairs
from datamodules.io.pixels import ImageInfo


def _write(path, shape=(32, 32), bit_depth=8):
    write_image(path, np.full(shape, 0.5, np.float32), ImageInfo(bit_depth, path.suffix))


def test_pairs_by_name_with_mixed_png_and_jpeg(tmp_path):
    for name in ("a.png", "b.jpeg"):
        _write(tmp_path / "train" / "high" / name)
        _write(tmp_path / "train" / "low" / name)
    (tmp_path / "train" / "low" / "notes.txt").write_text("ignored")
    pairs = find_pairs(tmp_path / "train")
    assert [p.name for p in pairs] == ["a.png", "b.jpeg"]
    assert pairs[1].low.parent.name == "low" and pairs[1].high.parent.name == "high"


def test_missing_partner_names_the_file(tmp_path):
    _write(tmp_path / "train" / "high" / "a.png")
    _write(tmp_path / "train" / "low" / "a.png")
    _write(tmp_path / "train" / "high" / "orphan.png")
    with pytest.raises(DatasetLayoutError, match=r"high/orphan.png: no low-dose partner"):
        find_pairs(tmp_path / "train")


def test_size_mismatch_names_both_files(tmp_path):
    _write(tmp_path / "val" / "high" / "a.png", shape=(32, 32))
    _write(tmp_path / "val" / "low" / "a.png", shape=(32, 40))
    with pytest.raises(DatasetLayoutError, match=r"low/a.png: size 40x32 differs .*high/a.png \(32x32\)"):
        find_pairs(tmp_path / "val")


def test_unreadable_image_names_the_file(tmp_path):
    _write(tmp_path / "test" / "high" / "a.png")
    (tmp_path / "test" / "low").mkdir(parents=True)
    (tmp_path / "test" / "low" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"low/a.png: cannot read image"):
        find_pairs(tmp_path / "test")


def test_empty_split_and_missing_folders_name_the_folder(tmp_path):
    (tmp_path / "train" / "high").mkdir(parents=True)
    (tmp_path / "train" / "low").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"train: no images .*empty split"):
        find_pairs(tmp_path / "train")
    with pytest.raises(DatasetLayoutError, match=r"val: split folder not found"):
        find_pairs(tmp_path / "val")
    with pytest.raises(DatasetLayoutError, match=r"data.root: folder not found: .*nowhere"):
        PairedDataModule(root=str(tmp_path / "nowhere"))


def test_paired_datamodule_patches_and_full_images(paired_root):
    dm = PairedDataModule(root=str(paired_root), batch_size=2, patch_size=32, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["low"].shape == (2, 1, 32, 32) and batch["high"].shape == (2, 1, 32, 32)
    assert batch["low"].dtype == torch.float32
    dm.setup("test")
    sample = dm.dataset("test")[0]
    assert sample["low"].shape == (1, 64, 64) and sample["source"].endswith("test/low/img_0.png")


def test_augmented_patches_stay_aligned(paired_root):
    dm = PairedDataModule(root=str(paired_root), batch_size=1, patch_size=32, augment=True, num_workers=0)
    dm.setup("fit")
    dataset = dm.dataset("train")
    full = dm.dataset("val")  # full images, no augmentation
    assert full[0]["low"].shape == (1, 64, 64)
    torch.manual_seed(0)
    for _ in range(8):
        sample = dataset[0]
        # The pair was written as low = clip(0.585 high + 0.048 + noise): an aligned crop keeps the relation.
        residual = sample["low"] - (0.585 * sample["high"] + 0.048)
        assert residual.std() < 0.06


def test_patch_larger_than_images_is_refused(paired_root):
    dm = PairedDataModule(root=str(paired_root), patch_size=128, num_workers=0)
    with pytest.raises(ValueError, match=r"data.patch_size=128 is larger than .*img_0.png \(64x64\)"):
        dm.setup("fit")


def test_embedded_sample_has_fixed_eval_noise():
    dm = SimulatedDataModule(patch_size=128, num_workers=0)
    dm.setup()
    assert len(dm.dataset("train")) == 80 * dm.patches_per_image
    assert len(dm.dataset("val")) == 10 and len(dm.dataset("test")) == 10
    a, b = dm.dataset("val")[3], SimulatedDataModule(num_workers=0).dataset("val")[3]
    assert torch.equal(a["low"], b["low"]) and a["low"].shape == (1, 256, 256)
    # Training noise is fresh on every draw of the same image.
    train = SimulatedDataModule(patch_size=None, augment=False, num_workers=0).dataset("train")
    first, second = train[0], train[0]
    assert torch.equal(first["high"], second["high"]) and not torch.equal(first["low"], second["low"])
