"""A model warns, one line per file, about inputs unlike its training inputs, and stays quiet otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config

from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageInfo
from datamodules.noise import AffineGaussianNoiseModel, PhysicalNoiseModel
from lightning_modules.commands.denoise import denoise
from lightning_modules.inference.input_range import (
    INPUT_RANGE_FILE,
    InputCheck,
    measure_input_range,
    read_input_range,
    unfamiliar_input,
    write_input_range,
)
from lightning_modules.runs.folders import PRETRAINED_DIR

SAMPLE = Path(__file__).resolve().parents[1] / "datamodules" / "sample_data" / "test"


def _clean_images() -> list[np.ndarray]:
    return [read_image(path)[0] for path in sorted(SAMPLE.iterdir())[:4]]


def _degraded(model, dose: float) -> list[np.ndarray]:
    generator = torch.Generator().manual_seed(0)
    return [model.simulate(torch.from_numpy(x), dose, generator).numpy() for x in _clean_images()]


def test_record_round_trips_and_separates_darker_from_full_brightness(tmp_path):
    darker = _degraded(AffineGaussianNoiseModel(), 1.0)  # the cxr-pairs degradation
    record = measure_input_range(darker, "darker images", "physical")
    write_input_range(tmp_path, record)
    assert read_input_range(tmp_path) == record
    assert read_input_range(tmp_path / "elsewhere") is None
    assert all(unfamiliar_input(image, record) is None for image in darker)
    physical = _degraded(PhysicalNoiseModel(), 0.25)
    differences = [unfamiliar_input(image, record) for image in physical]
    assert all(d is not None and "99.5% quantile" in d for d in differences)


def test_unreadable_record_names_its_file(tmp_path):
    (tmp_path / INPUT_RANGE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=INPUT_RANGE_FILE):
        read_input_range(tmp_path)


def test_check_prints_the_first_warnings_then_a_count():
    lines: list[str] = []
    record = {"low": [0.0, 0.1], "high": [0.5, 0.6], "trained_on": "darker images", "otherwise": "physical"}
    check = InputCheck(record, lines.append, limit=2)
    bright = np.linspace(0.0, 1.0, 1000, dtype=np.float32)
    for i in range(5):
        check(f"img{i}.png", bright)
    check("fine.png", bright * 0.55)
    check.finish()
    assert len(lines) == 3 and lines[0].startswith("warning: img0.png: ") and "use ckpt=physical" in lines[0]
    assert lines[2] == "warning: 3 more inputs unlike the model's training inputs"


def test_shipped_model_warns_on_a_physical_noise_image_and_not_on_a_cxr_pairs_one(tmp_path, capsys):
    assert read_input_range(PRETRAINED_DIR) is not None, "the shipped model carries its input range"
    inputs = tmp_path / "in"
    write_image(inputs / "darker.png", _degraded(AffineGaussianNoiseModel(), 1.0)[0], ImageInfo(8, ".png"))
    write_image(inputs / "detector.png", _degraded(PhysicalNoiseModel(), 0.25)[0], ImageInfo(8, ".png"))
    cfg = compose_config("denoise", [f"input={inputs}", f"output={tmp_path / 'out'}", "progress=false"])
    summary = denoise(cfg)
    err = capsys.readouterr().err
    assert summary["images"] == 2 and (tmp_path / "out" / "detector.png").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "detector.png" in warnings[0] and "ckpt=physical" in warnings[0]
