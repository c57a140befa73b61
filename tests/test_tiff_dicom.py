"""TIFF and DICOM I/O on small files the tests write themselves."""

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import truncate_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageReadError

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def write_dicom_file(path, stored, photometric="MONOCHROME2", bits_stored=12, slope=1.0, intercept=0.0, signed=False):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Test^Patient", "P123"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "DX"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = pydicom.valuerep.DSfloat(slope, auto_format=True)
    ds.RescaleIntercept = pydicom.valuerep.DSfloat(intercept, auto_format=True)
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_tiff_round_trip_is_exact(tmp_path, dtype):
    stored = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, size=(19, 23)).astype(dtype)
    tifffile.imwrite(tmp_path / "in.tif", stored)
    array, info = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.tif", array, info)
    back = tifffile.imread(tmp_path / "out.tif")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, stored)


def test_float_tiff_keeps_values_and_range(tmp_path):
    unit = np.random.default_rng(0).random((8, 9)).astype(np.float32)
    tifffile.imwrite(tmp_path / "unit.tiff", unit)
    array, info = read_image(tmp_path / "unit.tiff")
    write_image(tmp_path / "unit_out.tiff", array, info)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "unit_out.tiff"), unit)
    wide = unit * 3000.0 - 1000.0
    tifffile.imwrite(tmp_path / "wide.tif", wide)
    array, info = read_image(tmp_path / "wide.tif")
    assert array.min() == 0.0 and array.max() == 1.0 and info.value_range[0] == pytest.approx(wide.min())
    write_image(tmp_path / "wide_out.tif", array, info)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "wide_out.tif"), wide, rtol=1e-5, atol=1e-3)


def test_dicom_monochrome1_and_rescale_round_trip(tmp_path):
    stored = np.random.default_rng(1).integers(0, 4096, size=(16, 12)).astype(np.uint16)
    src = write_dicom_file(tmp_path / "in.dcm", stored, photometric="MONOCHROME1", slope=0.5, intercept=-100.0)
    array, info = read_image(src)
    # MONOCHROME1: high stored values are thin tissue, so they come out dark.
    np.testing.assert_allclose(array, 1.0 - stored / 4095.0, atol=1e-6)
    assert info.photometric == "MONOCHROME1" and info.bit_depth == 12
    out = write_image(tmp_path / "out.dcm", array, info)
    ds_in, ds_out = pydicom.dcmread(src), pydicom.dcmread(out)
    np.testing.assert_array_equal(ds_out.pixel_array, stored)
    assert ds_out.PhotometricInterpretation == "MONOCHROME1" and ds_out.BitsStored == 12
    assert ds_out.PatientID == "P123" and ds_out.StudyInstanceUID == ds_in.StudyInstanceUID
    assert ds_out.SOPInstanceUID != ds_in.SOPInstanceUID
    assert ds_out.ImageType[0] == "DERIVED" and "Denoised" in ds_out.DerivationDescription
    assert float(ds_out.RescaleSlope) == 0.5 and float(ds_out.RescaleIntercept) == -100.0


def test_signed_dicom_round_trip(tmp_path):
    stored = np.random.default_rng(2).integers(-2048, 2048, size=(10, 10)).astype(np.int16)
    src = write_dicom_file(tmp_path / "s.dcm", stored, signed=True)
    array, info = read_image(src)
    np.testing.assert_allclose(array, (stored + 2048) / 4095.0, atol=1e-6)
    out = write_image(tmp_path / "s_out.dcm", array, info)
    np.testing.assert_array_equal(pydicom.dcmread(out).pixel_array, stored)


def test_dicom_errors_name_the_file(tmp_path):
    src = write_dicom_file(tmp_path / "nopix.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(src)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(ImageReadError, match="nopix.dcm: DICOM has no pixel data"):
        read_image(tmp_path / "nopix.dcm")

    ds = pydicom.dcmread(write_dicom_file(tmp_path / "jpeg.dcm", np.zeros((4, 4), np.uint16)))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xdb not really a jpeg \xff\xd9"])
    ds.save_as(tmp_path / "jpeg.dcm")
    with pytest.raises(ImageReadError, match=r"(?s)jpeg.dcm: cannot decode pixel data .*pylibjpeg"):
        read_image(tmp_path / "jpeg.dcm")

    (tmp_path / "junk.dcm").write_bytes(b"nothing here")
    with pytest.raises(ImageReadError, match="junk.dcm"):
        read_image(tmp_path / "junk.dcm")


def test_unsupported_tiff_type_and_truncated_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "i32.tif", np.zeros((4, 4), np.int32))
    with pytest.raises(ImageReadError, match="i32.tif: unsupported TIFF sample type int32"):
        read_image(tmp_path / "i32.tif")
    tifffile.imwrite(tmp_path / "full.tif", np.random.default_rng(0).integers(0, 65535, (64, 64)).astype(np.uint16))
    truncate_file(tmp_path / "full.tif", tmp_path / "cut.tif", keep=1 / 3)
    with pytest.raises(ImageReadError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


def test_mixed_folder_skips_other_files_with_one_warning(tmp_path):
    from datamodules.io.pairing import list_images

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 4), np.uint16))
    write_dicom_file(tmp_path / "b.dcm", np.zeros((4, 4), np.uint16))
    write_image(tmp_path / "c.png", np.zeros((4, 4)))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.warns(UserWarning, match="skipped 2 non-image file"):
        names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.tif", "b.dcm", "c.png"]
