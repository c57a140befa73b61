"""Choosing the inference device from a ``device=auto|cpu|cuda`` setting."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda: no CUDA device is available (use device=cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is unknown; use auto, cpu or cuda")
    return torch.device(name)
