import numpy as np
import pytest
from conftest import truncate_file
from PIL import Image

from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageInfo, ImageReadError, to_stored


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_round_trip_is_exact(tmp_path, bit_depth):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 1 << bit_depth, size=(37, 31)).astype(np.uint8 if bit_depth == 8 else np.uint16)
    array = stored.astype(np.float32) / ((1 << bit_depth) - 1)
    path = write_image(tmp_path / "x.png", array, ImageInfo(bit_depth, ".png"))
    back, info = read_image(path)
    assert info.bit_depth == bit_depth
    assert back.dtype == np.float32 and back.shape == (37, 31)
    np.testing.assert_array_equal(to_stored(back, bit_depth), stored)
    assert back.min() >= 0.0 and back.max() <= 1.0


def test_jpeg_reads_as_8bit_grey(tmp_path):
    Image.fromarray(np.full((16, 20), 128, np.uint8)).save(tmp_path / "a.jpeg", quality=95)
    array, info = read_image(tmp_path / "a.jpeg")
    assert info.bit_depth == 8 and array.shape == (16, 20)
    assert abs(float(array.mean()) - 128 / 255) < 2 / 255


def test_grey_rgb_is_accepted_with_warning_and_colour_rejected(tmp_path):
    grey = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8)[..., None], 3, axis=2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    with pytest.warns(UserWarning, match="grey"):
        array, _ = read_image(tmp_path / "grey.png")
    assert array.shape == (8, 8)
    colour = grey.copy()
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="colour.png: colour image"):
        read_image(tmp_path / "colour.png")


def test_unreadable_and_truncated_files_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    write_image(tmp_path / "full.png", np.random.default_rng(0).random((64, 64)), ImageInfo(8, ".png"))
    truncate_file(tmp_path / "full.png", tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_failed_write_leaves_no_partial_file(tmp_path):
    with pytest.raises(ValueError, match="JPEG holds 8-bit"):
        write_image(tmp_path / "x.jpeg", np.zeros((4, 4)), ImageInfo(16, ".png"))
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    path = write_image(tmp_path / "p.png", np.zeros((4, 4)))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
