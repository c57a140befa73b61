"""Fit :class:`~datamodules.noise.AffineGaussianNoiseModel` to a folder of real low-/high-dose pairs.

What is fitted, and from which pixels:

- ``floor``: the lowest stored low-dose value, when it is a clipping level (over 1 % of the pixels of
  the lossless low-dose images sit exactly on it); else 0.
- ``gain``, ``offset``: least squares ``low ≈ gain·high + offset`` over pixels whose expected value is
  at least 3σ inside ``[floor, 1]`` (so clipping does not bend the line), refitted once with that σ.
- ``sigma``: the spread of the residual on those pixels, from the lossless (PNG, TIFF, DICOM) pairs when
  there are any, since JPEG smooths the noise it stores; the noise is assumed signal-independent and
  white (``residual_std_by_level`` and ``residual_correlation`` in the result let you check both).
- ``jpeg_fraction``, ``jpeg_quality``: the share of low-dose files stored as JPEG, and the libjpeg
  quality whose luminance table matches theirs most often.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datamodules.io.images import read_image
from datamodules.io.pairing import ImagePair

JPEG_SUFFIXES = (".jpg", ".jpeg")
FLOOR_SHARE = 0.01  # a value held by this share of pixels, at the very bottom, is a clipping level


def fit_affine_gaussian(pairs: list[ImagePair], max_pairs: int = 300) -> dict[str, Any]:
    """Fit the noise model to ``pairs`` (at most ``max_pairs``, spread evenly over the list).

    Returns the model's keyword arguments (``gain``, ``offset``, ``sigma``, ``floor``, ``quantize_bits``,
    ``jpeg_quality``, ``jpeg_fraction``) and, under ``"checks"``, what the fit assumed: residual spread
    by intensity, lag-1 correlation, how many pairs and pixels it used.

    Raises:
        ValueError: no pairs, or too few unclipped pixels to fit.
    """
    if not pairs:
        raise ValueError("fit_affine_gaussian: no pairs to fit")
    chosen = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, min(max_pairs, len(pairs))).round()]
    lossless = [pair for pair in chosen if pair.low.suffix.lower() not in JPEG_SUFFIXES]
    fit_pairs = lossless or chosen
    images = _read(fit_pairs)
    lows = np.concatenate([low.ravel() for low, _ in images])
    highs = np.concatenate([high.ravel() for _, high in images])
    floor = _clipping_floor(lows)

    usable = np.ones_like(highs, dtype=bool)
    gain, offset, sigma = _affine(highs, lows, usable)
    for _ in range(2):  # keep only pixels whose expected value is 3 sigma inside [floor, 1], refit
        expected = gain * highs + offset
        usable = (expected - 3 * sigma > floor) & (expected + 3 * sigma < 1.0)
        if usable.sum() < 1000:
            raise ValueError(
                f"fit_affine_gaussian: only {int(usable.sum())} unclipped pixels in {len(fit_pairs)} pairs"
            )
        gain, offset, sigma = _affine(highs, lows, usable)

    residual = np.where(usable, lows - (gain * highs + offset), 0.0)
    residual_images = np.split(residual, np.cumsum([low.size for low, _ in images])[:-1])
    residual_images = [r.reshape(low.shape) for r, (low, _) in zip(residual_images, images)]
    jpeg_files = [pair.low for pair in chosen if pair.low.suffix.lower() in JPEG_SUFFIXES]
    qualities = Counter(q for q in (jpeg_quality(path) for path in jpeg_files) if q is not None)
    return {
        "gain": gain,
        "offset": offset,
        "sigma": sigma,
        "floor": floor,
        "quantize_bits": 8,
        "jpeg_quality": qualities.most_common(1)[0][0] if qualities else None,
        "jpeg_fraction": len(jpeg_files) / len(chosen),
        "checks": {
            "pairs": len(chosen),
            "pairs_for_noise": len(fit_pairs),
            "noise_from": "lossless pairs" if lossless else "all pairs (none lossless; JPEG lowers sigma)",
            "pixels": int(usable.sum()),
            "residual_std_by_level": _std_by_level(highs, residual, usable),
            "residual_correlation": {
                "x": _lag_correlation(residual_images, axis=1),
                "y": _lag_correlation(residual_images, axis=0),
            },
        },
    }


def jpeg_quality(path: str | Path) -> int | None:
    """The libjpeg quality (1-100) whose standard luminance table is closest to the file's, or ``None``
    when the file is not a JPEG."""
    with Image.open(path) as image:
        tables = getattr(image, "quantization", None)
        if image.format != "JPEG" or not tables:
            return None
        table = np.asarray(tables[0], dtype=np.float64)
    errors = [np.abs(_standard_table(q) - table).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


_TABLES: dict[int, np.ndarray] = {}


def _standard_table(quality: int) -> np.ndarray:
    if quality not in _TABLES:
        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as image:
            _TABLES[quality] = np.asarray(image.quantization[0], dtype=np.float64)
    return _TABLES[quality]


def _read(pairs: list[ImagePair]) -> list[tuple[np.ndarray, np.ndarray]]:
    images = []
    for pair in pairs:
        low, high = read_image(pair.low)[0], read_image(pair.high)[0]
        if low.shape != high.shape:
            raise ValueError(f"{pair.low}: size {low.shape} differs from {pair.high} {high.shape}")
        images.append((low.astype(np.float64), high.astype(np.float64)))
    return images


def _clipping_floor(lows: np.ndarray) -> float:
    lowest = float(lows.min())
    return lowest if np.mean(lows == lowest) > FLOOR_SHARE and lowest > 0 else 0.0


def _affine(highs: np.ndarray, lows: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    x, y = highs[mask], lows[mask]
    gain, offset = np.polyfit(x, y, 1)
    return float(gain), float(offset), float(np.std(y - (gain * x + offset)))


def _std_by_level(highs: np.ndarray, residual: np.ndarray, usable: np.ndarray) -> dict[str, float]:
    edges = np.quantile(highs[usable], [0.0, 0.25, 0.5, 0.75, 1.0])
    out = {}
    for low, high in zip(edges[:-1], edges[1:]):
        band = usable & (highs >= low) & (highs <= high)
        out[f"{low:.2f}-{high:.2f}"] = float(residual[band].std())
    return out


def _lag_correlation(residuals: list[np.ndarray], axis: int) -> float:
    """Lag-1 correlation of the residual between neighbours along ``axis`` (0: down columns, 1: along
    rows); masked (clipped) pixels are zero and add nothing."""
    products = 0.0
    for r in residuals:
        first = r[:-1] if axis == 0 else r[:, :-1]
        second = r[1:] if axis == 0 else r[:, 1:]
        products += float(np.sum(first * second))
    energy = sum(float(np.sum(r**2)) for r in residuals)
    return products / max(energy, 1e-12)
