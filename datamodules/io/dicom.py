"""DICOM radiographs via pydicom: sign, byte order, Bits Stored, rescale, MONOCHROME1, tag-preserving write-back.

pydicom decodes the stored integers (either byte order, signed or not, only the Bits Stored bits).
They are normalised over the range ``bit_depth`` bits allow: ``stored / (2**bits - 1)`` as for PNG and
TIFF, ``bits`` being Bits Stored (``bit_depth="auto"``) or the user's ``bit_depth``. Signed data
(Pixel Representation 1) whose values are all >= 0 is the same image as unsigned data with those
values and reads the same; signed data holding negative values is normalised over the signed range
``-2**(bits-1) .. 2**(bits-1) - 1``. Rescale Slope/Intercept are linear, so the modality values give
the same [0, 1] image as the stored ones, except that a negative slope flips it; MONOCHROME1 is
inverted so bright always means dense. Writing undoes exactly those steps in the source's own byte
order, keeps every tag of the source file (patient, study, series, rescale, windowing), and marks the
result as derived: new SOP Instance UID, ``ImageType`` DERIVED and a Derivation Description.

Refused in one line naming the file: multi-frame and colour data, High Bit other than Bits Stored - 1,
Bits Allocated other than 8 or 16, and compressed data whose decoder is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from datamodules.io.atomic import atomic_write
from datamodules.io.pixels import BitDepth, ImageInfo, ImageReadError

DERIVATION = "Denoised by xray-denoise (ResNet-18 UNet)"
DECODER_HINT = "install pylibjpeg with pylibjpeg-libjpeg / pylibjpeg-openjpeg, or python-gdcm"

# pydicom logs each failing decoder plugin (with tracebacks at debug level); the project's one-line
# ImageReadError already says what failed, so pydicom's log stays off the console.
logging.getLogger("pydicom").addHandler(logging.NullHandler())
logging.getLogger("pydicom").propagate = False


def _stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def _rescale(ds: pydicom.Dataset) -> tuple[float, float]:
    return float(getattr(ds, "RescaleSlope", 1.0) or 1.0), float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _check_layout(ds: pydicom.Dataset, path: Path) -> int:
    """Refuse what this reader cannot handle exactly; return Bits Stored."""
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM has no pixel data")
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or samples != 1:
        raise ImageReadError(
            f"{path}: photometric interpretation {photometric} with {samples} sample(s) per pixel; "
            "only greyscale (MONOCHROME1/2) is supported"
        )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM ({frames} frames); only single-frame images are supported")
    allocated = int(getattr(ds, "BitsAllocated", 16))
    bits_stored = int(getattr(ds, "BitsStored", allocated))
    if allocated not in (8, 16) or not 1 <= bits_stored <= allocated:
        raise ImageReadError(
            f"{path}: unsupported bit depth (Bits Allocated {allocated}, Bits Stored {bits_stored}; "
            "need 8 or 16 allocated, 1..16 stored)"
        )
    high_bit = int(getattr(ds, "HighBit", bits_stored - 1))
    if high_bit != bits_stored - 1:
        raise ImageReadError(
            f"{path}: High Bit {high_bit} with Bits Stored {bits_stored}; only pixel values in the low bits "
            "(High Bit = Bits Stored - 1) are supported"
        )
    return bits_stored


def _decode(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as err:
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        name = f"{syntax.name} ({syntax})" if syntax is not None else "unknown"
        raise ImageReadError(
            f"{path}: cannot decode pixel data with transfer syntax {name}: {_one_line(err)}; {DECODER_HINT}"
        ) from err
    except Exception as err:  # noqa: BLE001 - truncated pixel data surfaces as assorted errors
        raise ImageReadError(f"{path}: cannot decode pixel data ({_one_line(err)})") from err


def read_dicom(path: Path, bit_depth: BitDepth = "auto") -> tuple[np.ndarray, ImageInfo]:
    """Read one greyscale DICOM image as float32 in [0, 1], bright = dense (module doc)."""
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read DICOM ({_one_line(err)})") from err
    bits_stored = _check_layout(ds, path)
    stored = _decode(ds, path)
    if stored.ndim != 2:
        raise ImageReadError(f"{path}: {stored.ndim}-D pixel data {stored.shape}; need one 2-D frame")
    negative = stored.size > 0 and int(stored.min()) < 0
    bits = bits_stored if bit_depth == "auto" else bit_depth
    low, high = _stored_range(bits, negative)
    if stored.size and (int(stored.min()) < low or int(stored.max()) > high):
        raise ImageReadError(
            f"{path}: values {int(stored.min())}..{int(stored.max())} do not fit bit_depth={bits} ({low}..{high}); "
            "state the data's real bit depth or bit_depth=auto"
        )
    array = ((stored.astype(np.float64) - low) / (high - low)).astype(np.float32)
    slope, _ = _rescale(ds)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if (slope < 0) != (photometric == "MONOCHROME1"):
        array = 1.0 - array  # each of the two flips bright and dark
    suffix = path.suffix.lower() if path.suffix.lower() in (".dcm", ".dicom") else ".dcm"
    info = ImageInfo(bits, suffix, kind="int" if negative else "uint", photometric=photometric, source=str(path))
    return array, info


def write_dicom(path: Path, array: np.ndarray, info: ImageInfo | None) -> Path:
    """Write ``array`` (display, [0, 1]) into a copy of ``info.source`` with new pixel data."""
    if info is None or info.source is None:
        raise ValueError(f"{path}: writing DICOM needs the source DICOM (ImageInfo.source) to copy its tags from")
    ds = pydicom.dcmread(info.source)
    array = np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0)
    slope, _ = _rescale(ds)
    if (slope < 0) != (info.photometric == "MONOCHROME1"):
        array = 1.0 - array
    low, high = _stored_range(info.bit_depth, info.kind == "int")
    stored = np.rint(low + array * (high - low))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    bits_stored = int(getattr(ds, "BitsStored", info.bit_depth))
    stored = np.clip(stored, *_stored_range(bits_stored, signed))  # what the source's encoding can hold
    bits_allocated = int(getattr(ds, "BitsAllocated", 16))
    dtype = np.dtype(
        {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
            (bits_allocated, signed)
        ]
    )
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        ds.file_meta.TransferSyntaxUID = syntax = pydicom.uid.ExplicitVRLittleEndian
    big_endian = syntax is not None and not syntax.is_little_endian
    ds.PixelData = stored.astype(dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    ds.Rows, ds.Columns = stored.shape
    new_uid = generate_uid()
    ds.SOPInstanceUID = new_uid
    if hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    image_type = list(getattr(ds, "ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED"] + image_type[1:] if image_type else ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = DERIVATION
    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
