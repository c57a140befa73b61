"""The inference paths compared by the benchmark, by name, as denoise.py settings and as predictors."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lightning_modules.inference.backends import InferencePath, bf16_native, choose_path, load_predictor
from lightning_modules.nets.forward import run_network

# name: (backend, precision, channels_last) as scripts/denoise.py settings; precision "auto" follows the device.
PATHS: dict[str, tuple[str, str, bool]] = {
    "fp32": ("torch", "32", False),
    "channels_last": ("torch", "32", True),
    "bf16": ("torch", "bf16", True),
    "fast": ("fast", "32", True),
    "default": ("auto", "auto", True),
    "compile": ("compile", "auto", True),
    "onnxruntime": ("onnxruntime", "32", False),
}
DESCRIPTIONS = {
    "fp32": "eager DenoisingUnet, fp32, NCHW",
    "channels_last": "eager, fp32, channels_last",
    "bf16": "eager, bf16 autocast + channels_last",
    "fast": "FastUnet: BN folded, oneDNN fused conv+ReLU(+add), fp32",
    "default": "denoise.py defaults (backend=auto precision=auto)",
    "compile": "torch.compile (inductor, frozen weights) of FastUnet",
    "onnxruntime": "ONNX Runtime fp32, CPU, intra-op threads = cores",
}


def denoise_defaults(repo: Path) -> DictConfig:
    """``conf/denoise.yaml`` as written (tile, overlap, margin, batch_size, memory_gb): what denoise.py runs with."""
    return OmegaConf.load(repo / "conf" / "denoise.yaml")


def check_paths(names: list[str]) -> None:
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise ValueError(f"unknown inference path(s) {unknown}; choose from {', '.join(PATHS)}")


def inference_path(name: str, device: torch.device | str) -> InferencePath:
    backend, precision, channels_last = PATHS[name]
    return choose_path(backend, precision, device, channels_last)


def denoise_overrides(name: str) -> list[str]:
    """``scripts/denoise.py`` overrides that select path ``name`` (the default path needs none)."""
    backend, precision, channels_last = PATHS[name]
    if name == "default":
        return []
    return [f"backend={backend}", f"precision={precision}", f"channels_last={str(channels_last).lower()}"]


def emulated_bf16(name: str, device: torch.device | str) -> bool:
    """True when path ``name`` runs bf16 on a device without native bf16 (emulated: very slow)."""
    return inference_path(name, device).bf16 and not bf16_native(device)


def build(
    name: str,
    checkpoint: str | os.PathLike,
    device: torch.device | str,
    batch_size: int = 1,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[nn.Module, InferencePath]:
    """The predictor of path ``name`` for ``checkpoint`` and the path it resolved to."""
    return load_predictor(checkpoint, device, inference_path(name, device), batch_size=batch_size, cache_dir=cache_dir)


def run(predictor: nn.Module, path: InferencePath, batch: torch.Tensor) -> torch.Tensor:
    """One forward pass as :func:`lightning_modules.inference.tiling.sliding_window` makes it."""
    return run_network(predictor, batch, path.bf16, path.channels_last)
