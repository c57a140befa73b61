"""DICOM radiographs via pydicom: rescale, Bits Stored, MONOCHROME1 and tag-preserving write-back.

Reading maps stored values through Rescale Slope/Intercept and normalises by the range that Bits
Stored allows (for a positive slope this equals ``stored / (2**BitsStored - 1)``, offset for signed
data), then inverts MONOCHROME1 so bright always means dense. Writing undoes exactly those steps,
keeps every tag of the source file (patient, study, series, rescale, windowing), and marks the result
as derived: new SOP Instance UID, ``ImageType`` DERIVED and a Derivation Description.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from datamodules.io.atomic import atomic_write
from datamodules.io.images import ImageInfo, ImageReadError

DERIVATION = "Denoised by xray-denoise (ResNet-18 UNet)"
DECODER_HINT = "install pylibjpeg with pylibjpeg-libjpeg / pylibjpeg-openjpeg, or python-gdcm"


def _stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def _rescale(ds: pydicom.Dataset) -> tuple[float, float]:
    return float(getattr(ds, "RescaleSlope", 1.0) or 1.0), float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)


def read_dicom(path: Path) -> tuple[np.ndarray, ImageInfo]:
    """Read one greyscale DICOM image as float32 in [0, 1], bright = dense."""
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read DICOM ({err})") from err
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM has no pixel data")
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{path}: photometric interpretation {photometric}; only greyscale (MONOCHROME1/2) is supported"
        )
    bits_stored = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)))
    if not 1 <= bits_stored <= 16:
        raise ImageReadError(f"{path}: unsupported bit depth (Bits Stored {bits_stored}; need 1..16)")
    try:
        stored = ds.pixel_array
    except (NotImplementedError, RuntimeError) as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(ds, "file_meta") else "unknown"
        raise ImageReadError(
            f"{path}: cannot decode pixel data with transfer syntax {syntax} ({err}); {DECODER_HINT}"
        ) from err
    except Exception as err:  # noqa: BLE001 - truncated pixel data surfaces as assorted errors
        raise ImageReadError(f"{path}: cannot decode pixel data ({err})") from err
    if stored.ndim != 2:
        raise ImageReadError(f"{path}: {stored.ndim}-D pixel data {stored.shape}; need one 2-D frame")
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    slope, intercept = _rescale(ds)
    low, high = _stored_range(bits_stored, signed)
    values = stored.astype(np.float64) * slope + intercept
    ends = sorted((low * slope + intercept, high * slope + intercept))
    array = ((values - ends[0]) / (ends[1] - ends[0])).astype(np.float32)
    if slope < 0:
        array = 1.0 - array
    if photometric == "MONOCHROME1":
        array = 1.0 - array
    info = ImageInfo(
        bits_stored, path.suffix.lower(), kind="int" if signed else "uint", photometric=photometric, source=str(path)
    )
    return np.clip(array, 0.0, 1.0), info


def write_dicom(path: Path, array: np.ndarray, info: ImageInfo | None) -> Path:
    """Write ``array`` (display, [0, 1]) into a copy of ``info.source`` with new pixel data."""
    if info is None or info.source is None:
        raise ValueError(f"{path}: writing DICOM needs the source DICOM (ImageInfo.source) to copy its tags from")
    ds = pydicom.dcmread(info.source)
    array = np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0)
    if info.photometric == "MONOCHROME1":
        array = 1.0 - array
    slope, _ = _rescale(ds)
    if slope < 0:
        array = 1.0 - array
    signed = info.kind == "int"
    low, high = _stored_range(info.bit_depth, signed)
    stored = np.rint(low + array * (high - low))
    bits_allocated = int(getattr(ds, "BitsAllocated", 16))
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
        (bits_allocated, signed)
    ]
    ds.PixelData = stored.astype(dtype).tobytes()
    ds.Rows, ds.Columns = stored.shape
    if (
        hasattr(ds, "file_meta")
        and ds.file_meta.get("TransferSyntaxUID") is not None
        and ds.file_meta.TransferSyntaxUID.is_compressed
    ):
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    new_uid = generate_uid()
    ds.SOPInstanceUID = new_uid
    if hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    image_type = list(getattr(ds, "ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED"] + image_type[1:] if image_type else ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = DERIVATION
    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
