"""Slow: an 8192² 16-bit image is denoised on the CPU with peak resident memory <= 2 GB."""

import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_8192_image_within_2gb(tmp_path):
    from datamodules.io.images import read_image, write_image
    from datamodules.io.pixels import ImageInfo
    from datamodules.phantom import chest_phantom
    from lightning_modules.nets.checkpoints import save_weights
    from lightning_modules.nets.unet import DenoisingUnet

    write_image(tmp_path / "big.png", chest_phantom(8192, seed=0).numpy(), ImageInfo(16, ".png"))
    save_weights(tmp_path / "net.pth", DenoisingUnet(residual=True), {"encoder_name": "resnet18", "residual": True})
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [
            sys.executable,
            "scripts/denoise.py",
            f"input={tmp_path / 'big.png'}",
            f"output={tmp_path / 'out'}",
            f"ckpt={tmp_path / 'net.pth'}",
            "progress=false",
            "device=cpu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib > before  # the denoise process is the largest child so far
    assert peak_kib <= 2_000_000, f"peak RSS {peak_kib / 1e6:.2f} GB"
    out, info = read_image(tmp_path / "out" / "big.png")
    assert out.shape == (8192, 8192) and info.bit_depth == 16
