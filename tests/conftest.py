"""Shared fixtures: composed configs and tiny datasets written to tmp folders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from datamodules.io.images import write_image
from datamodules.io.pixels import ImageInfo
from lightning_modules.commands.resolvers import prepare_hydra
from lightning_modules.runs.folders import resolve_checkpoint

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
prepare_hydra()
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: one thread per worker, not N workers x all cores
    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core for the fast tier; the e2e and slow tiers
    run in one process (their subprocesses, DDP ranks and timed kills take the cores themselves)."""
    tiers = str(config.option.markexpr)
    alone = any(tier in tiers and f"not {tier}" not in tiers for tier in ("e2e", "slow"))
    return 0 if alone else (os.cpu_count() or 1)


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random image in [0.1, 0.9]: easy to denoise, so a few steps show progress."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.zeros((height, width))
    for _ in range(4):
        fy, fx, phase = rng.uniform(0.5, 3.0, size=3)
        image += np.sin(2 * np.pi * (fy * y + fx * x) + phase * 6)
    image = (image - image.min()) / (image.max() - image.min() + 1e-9)
    return (0.1 + 0.8 * image).astype(np.float32)


def truncate_file(source: Path, target: Path | None = None, keep: float = 0.5) -> str:
    """Write the first ``keep`` of ``source``'s bytes to ``target`` (default: over ``source``); its header
    usually still reads, the pixels do not. Returns the SHA-256 of the written file."""
    data = source.read_bytes()
    target = target or source
    target.write_bytes(data[: int(len(data) * keep)])
    return hashlib.sha256(target.read_bytes()).hexdigest()


def make_paired_dataset(root: Path, sizes: dict[str, int], shape=(64, 64), seed: int = 0) -> Path:
    """Write ``root/{split}/{high,low}/img_k.png`` pairs (16-bit PNG) with the measured degradation."""
    rng = np.random.default_rng(seed)
    info = ImageInfo(bit_depth=16, suffix=".png")
    for split, count in sizes.items():
        for k in range(count):
            high = smooth_image(rng, *shape)
            low = np.clip(0.585 * high + 0.048 + rng.normal(0, 0.046, size=shape), 0, 1)
            write_image(root / split / "high" / f"img_{k}.png", high, info)
            write_image(root / split / "low" / f"img_{k}.png", low, info)
    return root


def make_clean_dataset(root: Path, sizes: dict[str, int], shape=(64, 64), seed: int = 0) -> Path:
    """Write ``root/{split}/img_k.png`` clean 8-bit images."""
    rng = np.random.default_rng(seed)
    for split, count in sizes.items():
        for k in range(count):
            write_image(root / split / f"img_{k}.png", smooth_image(rng, *shape), ImageInfo(8, ".png"))
    return root


@pytest.fixture
def paired_root(tmp_path: Path) -> Path:
    return make_paired_dataset(tmp_path / "dataset", {"train": 4, "val": 2, "test": 3})


def compose_config(config_name: str, overrides: list[str] | None = None, hydra_config: bool = False) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=hydra_config)


def tiny_train_config(output_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    """The train config on tiny data: CPU, few steps, output in ``output_dir``, no progress bar."""
    cfg = compose_config(
        "train",
        [
            "data.batch_size=4",
            "data.patch_size=32",
            "data.patches_per_image=1",
            "data.num_workers=0",
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1",
            "trainer.enable_model_summary=false",
            "~callbacks.progress_bar",
            "trainer.enable_progress_bar=false",
            *(overrides or []),
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir.parent)
    return cfg


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # a test that set a (multirun) Hydra config must not leak it


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """ONNX exports of the default CPU backend go to one cache for the session, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
        yield


def run_report(run: Path, out: Path, *overrides: str) -> dict:
    """``scripts/report.py``'s logic on the ``best_model.pth`` of ``run``, CPU, no progress bar, into ``out``."""
    from lightning_modules.commands.report import report

    cfg = compose_config(
        "report",
        [
            f"run={run}",
            f"ckpt={run / 'checkpoints' / 'best_model.pth'}",
            f"out_dir={out}",
            "progress=false",
            "device=cpu",
            *overrides,
        ],
    )
    return report(cfg)


TINY_NET = {
    "encoder_name": "resnet18",
    "residual": True,
    "decoder_attention_type": None,
    "decoder_channels": [16, 16, 16, 16, 16],
    "norm": "batch",
    "channels_last": False,
}
PHYSICAL_NOISE = {"_target_": "datamodules.noise.PhysicalNoiseModel", "I0": 2000.0, "sigma_e": 5.0}


def shipped_weights(name: str) -> Path:
    """The weights file of the shipped model ``ckpt=<name>``, found as every script finds it; the test
    is skipped where a checkout has none."""
    try:
        return resolve_checkpoint(name, None, "logs")[0]
    except FileNotFoundError as error:
        pytest.skip(str(error))


def write_untrained_run(run: Path, data_cfg: dict) -> Path:
    """A run folder as ``train.py`` leaves one (``run_config.yaml``, ``checkpoints/best_model.pth``), holding
    an untrained tiny network seeded with 0, so the report's logic can be run on it."""
    from lightning_modules.nets.checkpoints import save_weights
    from lightning_modules.nets.unet import DenoisingUnet

    run.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"data": data_cfg, "seed": 0}), run / "run_config.yaml")
    torch.manual_seed(0)
    net = DenoisingUnet(**{k: v for k, v in TINY_NET.items() if k != "channels_last"})
    save_weights(run / "checkpoints" / "best_model.pth", net, TINY_NET)
    return run
