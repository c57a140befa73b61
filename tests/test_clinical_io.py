"""Clinical files: 12-bit data in 16-bit PNG/TIFF, DICOM sign/byte order/rescale/layouts, DICOM without an extension."""

from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import compose_config
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from datamodules.io.images import (
    check_bit_depth,
    is_image_file,
    png_significant_bits,
    read_image,
    stated_bit_depth,
    write_image,
)
from datamodules.io.pairing import find_pairs, list_images
from datamodules.io.pixels import ImageReadError

HALF = 0.5 / 4095  # half a 12-bit step
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def _values(shape=(24, 20), low=161, high=2618, seed=0) -> np.ndarray:
    """A 12-bit DX-like image: values low..high (both present)."""
    values = np.random.default_rng(seed).integers(low, high + 1, size=shape)
    values.flat[:2] = low, high
    return values


def _png(path, values: np.ndarray, sbit: int | None = None):
    info = PngInfo()
    if sbit is not None:
        info.add(b"sBIT", bytes([sbit]))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path, pnginfo=info)
    return path


def _dicom(path, stored, *, signed=False, bits_stored=12, big_endian=False, slope=1.0, intercept=0.0, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = "P1", "DX"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = pydicom.valuerep.DSfloat(slope, auto_format=True)
    ds.RescaleIntercept = pydicom.valuerep.DSfloat(intercept, auto_format=True)
    for key, value in tags.items():
        setattr(ds, key, value)
    dtype = np.dtype(np.int16 if signed else np.uint16).newbyteorder(">" if big_endian else "<")
    ds.PixelData = np.asarray(stored).astype(dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_12bit_png_with_sbit_reads_over_4095_and_is_written_back_12bit(tmp_path):
    values = _values()
    array, info = read_image(_png(tmp_path / "dx.png", values, sbit=12))
    assert info.bit_depth == 12
    np.testing.assert_allclose(array, values / 4095, atol=HALF)
    out = write_image(tmp_path / "out" / "dx.png", array, info)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), values)  # 0..4095 in a 16-bit file
    assert Image.open(out).mode.startswith("I") and png_significant_bits(out) == 12


def test_16bit_png_without_sbit_stays_16bit_unless_bit_depth_is_stated(tmp_path):
    values = _values()
    path = _png(tmp_path / "dx.png", values)
    auto, info = read_image(path)
    assert info.bit_depth == 16  # nothing in the file says 12: documented, the user states bit_depth=12
    np.testing.assert_allclose(auto, values / 65535, atol=0.5 / 65535)
    stated, info = read_image(path, 12)
    assert info.bit_depth == 12
    np.testing.assert_allclose(stated, values / 4095, atol=HALF)
    with stated_bit_depth(12):  # how report() passes bit_depth=12 to every reader it calls
        np.testing.assert_array_equal(read_image(path)[0], stated)
    with pytest.raises(ImageReadError, match=r"dx.png: values up to 2618 do not fit bit_depth=11 \(0..2047\)"):
        read_image(path, 11)
    Image.fromarray((values // 16).astype(np.uint8)).save(tmp_path / "eight.png")
    with pytest.raises(ImageReadError, match="eight.png: bit_depth=12 is more than this 8-bit file holds"):
        read_image(tmp_path / "eight.png", 12)
    for bad in (17, 0, "twelve", True):
        with pytest.raises(ValueError, match=r"^bit_depth=.* is not a bit depth; use auto or a whole number 1..16"):
            check_bit_depth(bad)
    with pytest.raises(ValueError, match=r"^data.bit_depth=20 is not a bit depth"):
        check_bit_depth(20, "data.bit_depth")


def test_12bit_tiff_reads_its_max_sample_value_and_keeps_it(tmp_path):
    values = _values()
    tifffile.imwrite(tmp_path / "dx.tif", values.astype(np.uint16), extratags=[(281, "H", 1, 4095, True)])
    array, info = read_image(tmp_path / "dx.tif")
    assert info.bit_depth == 12
    np.testing.assert_allclose(array, values / 4095, atol=HALF)
    out = write_image(tmp_path / "out.tif", array, info)
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.asarray(), values)
        assert tif.pages[0].tags["MaxSampleValue"].value == 4095
    tifffile.imwrite(tmp_path / "plain.tif", values.astype(np.uint16))  # no tag: the container's 16 bits
    np.testing.assert_allclose(read_image(tmp_path / "plain.tif")[0], values / 65535, atol=0.5 / 65535)
    np.testing.assert_allclose(read_image(tmp_path / "plain.tif", 12)[0], values / 4095, atol=HALF)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((4, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ImageReadError, match=r"^\S*stack.tif: TIFF with 4 pages; only one image per file"):
        read_image(tmp_path / "stack.tif")


def test_signed_dicom_reads_like_the_same_values_unsigned(tmp_path):
    values = _values(high=2047)  # fits a signed 12-bit DX
    plain = read_image(_dicom(tmp_path / "plain.dcm", values))[0]
    np.testing.assert_allclose(plain, values / 4095, atol=HALF)
    signed, info = read_image(_dicom(tmp_path / "signed.dcm", values, signed=True))
    np.testing.assert_allclose(signed, plain, atol=HALF)
    out = write_image(tmp_path / "signed_out.dcm", signed, info)
    np.testing.assert_array_equal(pydicom.dcmread(out).pixel_array, values)
    # the case: signed 16-bit storage of 12-bit values 161..2618
    wide = _values()
    signed16 = _dicom(tmp_path / "signed16.dcm", wide, signed=True, bits_stored=16)
    plain16 = _dicom(tmp_path / "plain16.dcm", wide, bits_stored=16)
    np.testing.assert_allclose(read_image(signed16)[0], read_image(plain16)[0], atol=0.5 / 65535)
    stated, info = read_image(signed16, 12)
    np.testing.assert_allclose(stated, read_image(_dicom(tmp_path / "plain12.dcm", wide))[0], atol=HALF)
    np.testing.assert_array_equal(pydicom.dcmread(write_image(tmp_path / "s16.dcm", stated, info)).pixel_array, wide)
    # negative values keep the signed range, exactly as stored
    negative = _values(low=-2048, high=2047)
    array, info = read_image(_dicom(tmp_path / "neg.dcm", negative, signed=True))
    np.testing.assert_allclose(array, (negative + 2048) / 4095, atol=HALF)
    np.testing.assert_array_equal(
        pydicom.dcmread(write_image(tmp_path / "neg_out.dcm", array, info)).pixel_array, negative
    )


def test_big_endian_dicom_reads_the_same_and_is_written_in_its_own_byte_order(tmp_path):
    values = _values()
    little = read_image(_dicom(tmp_path / "le.dcm", values))[0]
    big, info = read_image(_dicom(tmp_path / "be.dcm", values, big_endian=True))
    np.testing.assert_allclose(big, little, atol=HALF)
    out = pydicom.dcmread(write_image(tmp_path / "be_out.dcm", big, info))
    assert out.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    np.testing.assert_array_equal(out.pixel_array, values)
    from pydicom.data import get_testdata_file

    small, small_big = get_testdata_file("MR_small.dcm"), get_testdata_file("MR_small_bigendian.dcm")
    if small is None or small_big is None:
        pytest.skip("pydicom's MR_small test files are not installed")
    a, _ = read_image(small)
    b, info = read_image(small_big)
    np.testing.assert_array_equal(a, b)
    out = pydicom.dcmread(write_image(tmp_path / "mr_out.dcm", b, info))
    np.testing.assert_array_equal(out.pixel_array, pydicom.dcmread(small).pixel_array)


def test_rescale_slope_and_intercept_give_the_same_image(tmp_path):
    values = _values()
    plain = read_image(_dicom(tmp_path / "plain.dcm", values))[0]
    shifted = _dicom(tmp_path / "shift.dcm", values - 2048, signed=True, intercept=2048.0)  # same modality values
    np.testing.assert_allclose(read_image(shifted)[0], plain, atol=HALF)
    flipped, info = read_image(_dicom(tmp_path / "flip.dcm", 4095 - values, slope=-1.0, intercept=4095.0))
    np.testing.assert_allclose(flipped, plain, atol=HALF)  # a negative slope flips bright and dark back
    out = pydicom.dcmread(write_image(tmp_path / "flip_out.dcm", flipped, info))
    np.testing.assert_array_equal(out.pixel_array, 4095 - values)
    assert float(out.RescaleSlope) == -1.0 and float(out.RescaleIntercept) == 4095.0


def test_dicom_layouts_that_cannot_be_read_exactly_are_refused_in_one_line(tmp_path, capfd):
    frames = _dicom(tmp_path / "cine.dcm", np.zeros((2, 8, 8)), NumberOfFrames=2)
    colour = _dicom(tmp_path / "rgb.dcm", np.zeros((8, 8)), SamplesPerPixel=3, PhotometricInterpretation="RGB")
    high_bit = _dicom(tmp_path / "hb.dcm", np.zeros((8, 8)), HighBit=15)
    jpeg = _dicom(tmp_path / "jpegls.dcm", np.zeros((4, 4)))
    ds = pydicom.dcmread(jpeg)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xdb not really a jpeg \xff\xd9"])
    ds.save_as(jpeg)
    cases = [
        (frames, r"multi-frame DICOM \(2 frames\); only single-frame images are supported"),
        (colour, r"photometric interpretation RGB with 3 sample\(s\) per pixel; only greyscale"),
        (high_bit, r"High Bit 15 with Bits Stored 12; only pixel values in the low bits"),
        (jpeg, r"cannot decode pixel data with transfer syntax JPEG-LS Lossless .*; install pylibjpeg"),
    ]
    from pydicom.data import get_testdata_file

    truncated = get_testdata_file("MR_truncated.dcm")
    if truncated is not None:
        cases.append((truncated, r"cannot decode pixel data \(The number of bytes of pixel data is less"))
    for path, message in cases:
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
        assert re.search(message, str(err.value)), str(err.value)
    assert "Traceback" not in capfd.readouterr().err


def test_dicom_without_an_extension_is_listed_read_and_written(tmp_path):
    values = _values()
    _dicom(tmp_path / "split" / "high" / "IM0001", values)
    _dicom(tmp_path / "split" / "low" / "IM0001", values // 2)
    (tmp_path / "split" / "high" / "README").write_text("not an image")
    with pytest.warns(UserWarning, match=r"skipped 1 non-image file\(s\): README"):
        assert [p.name for p in list_images(tmp_path / "split" / "high")] == ["IM0001"]
    assert is_image_file(tmp_path / "split" / "low" / "IM0001")
    pairs = find_pairs(tmp_path / "split")
    assert [pair.name for pair in pairs] == ["IM0001"]
    array, info = read_image(pairs[0].high)
    np.testing.assert_allclose(array, values / 4095, atol=HALF)
    out = write_image(tmp_path / "out" / "IM0001", array, info)  # the same name, a DICOM again
    np.testing.assert_array_equal(pydicom.dcmread(out).pixel_array, values)


def test_paired_data_bit_depth_reaches_every_image(tmp_path):
    from datamodules.datamodule import PairedDataModule

    values = _values((64, 64))
    for split in ("train", "val", "test"):
        _png(tmp_path / split / "high" / "a.png", values)
        _png(tmp_path / split / "low" / "a.png", values // 2)
    sample = PairedDataModule(str(tmp_path), bit_depth=12, patch_size=None).dataset("val")[0]
    np.testing.assert_allclose(sample["high"][0].numpy(), values / 4095, atol=HALF)
    np.testing.assert_allclose(sample["low"][0].numpy(), (values // 2) / 4095, atol=HALF)
    with pytest.raises(ValueError, match=r"^data.bit_depth=20 is not a bit depth"):
        PairedDataModule(str(tmp_path), bit_depth=20)
    assert compose_config("train", ["data=pairs", "data.bit_depth=12"]).data.bit_depth == 12


@pytest.mark.parametrize("data", ["sample", "pairs", "simulated", "noisy"])
def test_every_data_option_has_bit_depth_and_older_runs_keep_their_fingerprint(data):
    from omegaconf import OmegaConf

    from lightning_modules.runs.records import config_fingerprint

    cfg = compose_config("train", [f"data={data}"])
    assert cfg.data.bit_depth == "auto"
    assert compose_config("train", [f"data={data}", "data.bit_depth=12"]).data.bit_depth == 12  # no + needed
    before = OmegaConf.to_container(cfg)  # a run started before the key existed (one is training now)
    del before["data"]["bit_depth"]
    assert config_fingerprint(cfg) == config_fingerprint(OmegaConf.create(before))  # so resume=auto finds it
    assert config_fingerprint(cfg) != config_fingerprint(compose_config("train", [f"data={data}", "data.bit_depth=12"]))


def _denoised(folder, output, *extra):
    from lightning_modules.commands.denoise import denoise

    overrides = [f"input={folder}", f"output={output}", "tile=64", "overlap=16", "progress=false", *extra]
    assert denoise(compose_config("denoise", overrides))["failed"] == 0
    return np.asarray(Image.open(output / "dx.png")).astype(np.float64)


def test_denoised_12bit_png_keeps_its_scale(tmp_path):
    yy, xx = np.mgrid[0:64, 0:64]
    clean = 600 + 2600 * np.exp(-((yy - 32) ** 2 + (xx - 28) ** 2) / 400.0)
    values = np.clip(np.rint(clean + np.random.default_rng(0).normal(0, 60, clean.shape)), 0, 4095).astype(np.uint16)
    _png(tmp_path / "sbit" / "dx.png", values, sbit=12)
    _png(tmp_path / "plain" / "dx.png", values)
    full = np.rint(values.astype(np.float64) * 65535 / 4095).astype(np.uint16)  # the same image over 0..65535
    _png(tmp_path / "full" / "dx.png", full)

    reference = _denoised(tmp_path / "full", tmp_path / "out_full") / 65535
    twelve = _denoised(tmp_path / "sbit", tmp_path / "out_sbit")
    assert twelve.max() <= 4095 and png_significant_bits(tmp_path / "out_sbit" / "dx.png") == 12
    np.testing.assert_allclose(twelve / 4095, reference, atol=2 * HALF)
    stated = _denoised(tmp_path / "plain", tmp_path / "out_plain", "bit_depth=12")  # the same for a PNG without sBIT
    np.testing.assert_allclose(stated / 4095, reference, atol=2 * HALF)
    assert twelve.max() > 2000  # not the all-black image of 12-bit values divided by 65535


def test_test_script_reads_bit_depth_itself(tmp_path):
    """evaluate(cfg) with bit_depth=12 scores 12-bit pairs in plain 16-bit PNGs as the same pairs stored
    over 0..65535 (no wrapper in scripts/test.py needed); auto reads them as dark 16-bit images."""
    from lightning_modules.commands.evaluate import evaluate

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64]
    for k in range(2):
        clean = np.rint(600 + 2600 * np.exp(-((yy - 30 - k) ** 2 + (xx - 28) ** 2) / 400.0))
        noisy = np.clip(np.rint(clean + rng.normal(0, 150, clean.shape)), 0, 4095)
        for side, values in (("high", clean), ("low", noisy)):
            _png(tmp_path / "plain" / "test" / side / f"dx{k}.png", values)
            full = np.rint(values * 65535 / 4095)
            _png(tmp_path / "full" / "test" / side / f"dx{k}.png", full)

    def scores(folder, *extra):
        overrides = ["ckpt=pretrained", f"data_root={tmp_path / folder}", "device=cpu", *extra]
        cfg = compose_config("test", [*overrides, f"results_dir={tmp_path / 'out' / folder / str(len(extra))}"])
        return {k: v["mean"] for k, v in evaluate(cfg)["metrics"].items()}

    reference, stated, auto = scores("full"), scores("plain", "bit_depth=12"), scores("plain")
    for key in ("psnr_noisy", "psnr"):
        assert stated[key] == pytest.approx(reference[key], abs=0.05)
    assert auto["psnr_noisy"] > reference["psnr_noisy"] + 20  # 12-bit values over 0..65535: 16x darker
    written = tmp_path / "out" / "plain" / "1" / "images" / "dx0.png"
    assert png_significant_bits(written) == 12 and np.asarray(Image.open(written)).max() <= 4095
