"""Each shipped model on a real radiograph: tiled denoising with the default settings reproduces
whole-image denoising within 2/255 at every pixel.

The image is an embedded sample radiograph (always present) with the model's own degradation
simulated (`pretrained`: the cxr-pairs one; `physical`: photon noise at dose 0.25), bicubic-resized
to 1536². The whole-image run gets the memory for one pass; the tiled run fixes ``tile=1024``: smaller
than any tile the defaults choose (``test_tile_plan.py`` checks they stay >= 1024 even at 8192²), so
this bounds the seams of every default plan.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, shipped_weights

from datamodules import SAMPLE_ROOT
from datamodules.io.images import read_image, write_image
from datamodules.io.pairing import list_images
from datamodules.io.pixels import ImageInfo
from datamodules.noise import AffineGaussianNoiseModel, PhysicalNoiseModel
from lightning_modules.commands.denoise import denoise
from lightning_modules.inference.backends import choose_path, load_predictor
from lightning_modules.inference.tile_plan import plan_for

SIZE = 1536
TILE = 1024
TOLERANCE = 2 / 255
WHOLE_GB = 8.0  # room for the whole 1536² image in one pass on every backend
DEGRADATIONS = {"pretrained": (AffineGaussianNoiseModel(), 1.0), "physical": (PhysicalNoiseModel(), 0.25)}


@pytest.fixture(scope="module", params=list(DEGRADATIONS))
def radiograph(request, tmp_path_factory):
    weights = shipped_weights(request.param)
    high = torch.from_numpy(read_image(list_images(SAMPLE_ROOT / "test")[0])[0])
    noise, dose = DEGRADATIONS[request.param]
    low = noise.simulate(high, dose, torch.Generator().manual_seed(0))
    image = F.interpolate(low[None, None], size=(SIZE, SIZE), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)
    folder = tmp_path_factory.mktemp("seams") / "in"
    write_image(folder / "chest.png", image.numpy(), ImageInfo(16, ".png"))
    return request.param, weights, folder


def _denoised(folder, output, *overrides: str) -> np.ndarray:
    cfg = compose_config("denoise", [f"input={folder}", f"output={output}", "progress=false", *overrides])
    assert denoise(cfg)["images"] == 1
    return read_image(output / "chest.png")[0]


@pytest.mark.parametrize("precision", ["auto", "32"])  # the default (bf16 where native) and fp32
def test_tiled_equals_whole_image_for_the_shipped_models(radiograph, tmp_path, precision):
    model, weights, folder = radiograph
    defaults = compose_config("denoise", ["input=x", "output=y"])
    if precision == "32" and not choose_path("auto", "auto", "cpu").bf16:
        pytest.skip("precision=auto is fp32 on this CPU: the auto case already ran it")
    _, path = load_predictor(weights, "cpu", choose_path("auto", precision, "cpu"))
    whole_plan = plan_for(SIZE, SIZE, path, WHOLE_GB, defaults.overlap)
    tiled_plan = plan_for(SIZE, SIZE, path, defaults.memory_gb, defaults.overlap, tile=TILE)
    assert whole_plan.tiles == 1 and tiled_plan.tiles == 4  # the comparison really is whole against tiled
    common = (f"ckpt={model}", f"precision={precision}")
    whole = _denoised(folder, tmp_path / "whole", *common, f"memory_gb={WHOLE_GB}")
    tiled = _denoised(folder, tmp_path / "tiled", *common, f"tile={TILE}")
    diff = np.abs(tiled - whole)
    assert whole.shape == (SIZE, SIZE) and 0.05 < whole.mean() < 0.95  # a real output, not a blank
    assert diff.max() <= TOLERANCE, f"max |tiled - whole| = {diff.max():.4f} ({255 * diff.max():.2f}/255)"
