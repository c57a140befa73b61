"""What a model's training inputs looked like, and a one-line warning for an input that does not.

A model folder (a shipped model, an export) may hold ``input_range.json``: the spread over the
training inputs of each image's 0.5 % and 99.5 % intensity quantiles, and which model to use for
images outside it. A model learns one degradation: the cxr-pairs model brightens every input, since
its inputs were darker than their targets, and wrecks a real low-dose image whose brightness is right.
Such an image is still denoised, but the user is told, in one line, what differs and what to use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.io.atomic import atomic_write_text

INPUT_RANGE_FILE = "input_range.json"
QUANTILES = (0.005, 0.995)
# Images' quantiles may stray this far outside the training inputs' spread before a warning.
TOLERANCE = 0.05


def image_quantiles(image: np.ndarray) -> tuple[float, float]:
    """The 0.5 % and 99.5 % intensity quantiles of ``image`` (values in [0, 1])."""
    low, high = np.quantile(np.asarray(image, dtype=np.float32), QUANTILES)
    return float(low), float(high)


def measure_input_range(images: Iterable[np.ndarray], trained_on: str, otherwise: str | None) -> dict[str, Any]:
    """The spread (0.1th to 99.9th percentile over images) of each image's low and high quantile.

    ``trained_on`` says in words what the inputs were; ``otherwise`` names the model for images
    outside the range (e.g. ``"ckpt=physical"``), or ``None``.
    """
    quantiles = np.array([image_quantiles(image) for image in images], dtype=np.float64)
    if quantiles.size == 0:
        raise ValueError("measure_input_range: no images to measure")
    spread = np.percentile(quantiles, (0.1, 99.9), axis=0)  # rows: the two percentiles; columns: low, high
    return {
        "quantiles": list(QUANTILES),
        "low": [round(float(spread[0, 0]), 4), round(float(spread[1, 0]), 4)],
        "high": [round(float(spread[0, 1]), 4), round(float(spread[1, 1]), 4)],
        "images": int(len(quantiles)),
        "trained_on": trained_on,
        "otherwise": otherwise,
    }


def write_input_range(model_dir: str | Path, record: dict[str, Any]) -> Path:
    path = Path(model_dir) / INPUT_RANGE_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_input_range(model_dir: str | Path | None) -> dict[str, Any] | None:
    """The record of ``model_dir``, or ``None`` where the folder has none (nothing is checked then)."""
    path = None if model_dir is None else Path(model_dir) / INPUT_RANGE_FILE
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return {**record, "low": [float(v) for v in record["low"]], "high": [float(v) for v in record["high"]]}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable input-range record ({err})") from err


def unfamiliar_input(image: np.ndarray, record: dict[str, Any] | None) -> str | None:
    """What differs between ``image`` and the model's training inputs, in words; ``None`` if nothing."""
    if record is None:
        return None
    low, high = image_quantiles(image)
    names = {"low": f"{QUANTILES[0]:.1%} quantile", "high": f"{QUANTILES[1]:.1%} quantile"}
    for key, value in (("high", high), ("low", low)):
        lo, hi = record[key]
        if not lo - TOLERANCE <= value <= hi + TOLERANCE:
            return f"its intensity {names[key]} is {value:.2f}, the model's training inputs had {lo:.2f}–{hi:.2f}"
    return None


def warning_line(name: str, difference: str, record: dict[str, Any]) -> str:
    """One line naming the file, what differs and the model to use instead."""
    advice = f"; for such images use ckpt={record['otherwise']}" if record.get("otherwise") else ""
    return f"warning: {name}: {difference} (trained on {record['trained_on']}){advice}"


class InputCheck:
    """Checks each input against a model's record and prints the first ``limit`` warnings, one line each;
    :meth:`finish` prints how many more there were. Without a record it checks nothing."""

    def __init__(self, record: dict[str, Any] | None, emit: Callable[[str], None], limit: int = 10) -> None:
        self.record, self.emit, self.limit, self.flagged = record, emit, int(limit), 0

    def __call__(self, name: str, image: np.ndarray) -> None:
        difference = unfamiliar_input(image, self.record)
        if difference is None:
            return
        self.flagged += 1
        if self.flagged <= self.limit:
            self.emit(warning_line(name, difference, self.record))

    def finish(self) -> None:
        if self.flagged > self.limit:
            self.emit(f"warning: {self.flagged - self.limit} more inputs unlike the model's training inputs")
