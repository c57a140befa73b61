"""What the benchmark sections share: the model checkpoint, device, ceilings, results and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Context:
    checkpoint: Path  # the network every section runs (shipped model or a saved untrained one)
    model_note: str
    run_dir: Path  # where the report, temporary images and the ONNX cache go
    repo: Path  # where scripts/denoise.py lives
    image_dir: Path  # generated test images, reused between runs
    device: torch.device = torch.device("cpu")
    gflop_per_mpix: dict[str, float] = field(default_factory=dict)  # forward, forward_backward
    ceilings: dict[str, float] = field(default_factory=dict)  # "cpu conv fp32" -> GFLOP/s, ...
    results: dict[tuple, Any] = field(default_factory=dict)  # for the targets
    notes: list[str] = field(default_factory=list)

    @property
    def cache_dir(self) -> Path:
        return self.run_dir / "onnx_cache"

    def pct_of_ceiling(self, mpix_per_s: float, device: str, bf16: bool, training: bool = False) -> float | None:
        """The share of the measured conv ceiling that ``mpix_per_s`` of this model represents."""
        per_mpix = self.gflop_per_mpix.get("forward_backward" if training else "forward")
        precision = "bf16" if bf16 else "fp32"
        ceiling = self.ceilings.get(f"{device} conv {precision}") or self.ceilings.get(f"{device} matmul {precision}")
        if not per_mpix or not ceiling:
            return None
        return 100 * mpix_per_s * per_mpix / ceiling
