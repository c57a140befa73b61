"""Optimizer and learning-rate schedule from the plain ``optim`` config dict."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lightning_modules.selfsup.config import SUPERVISED_MONITOR

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = ("none", "cosine", "step", "plateau")
SCHEDULER_KEYS = {"step": ("step_epochs", "gamma"), "plateau": ("gamma", "patience")}  # defaults: conf/optim


def check_optim_config(optim: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the key for any invalid ``optim.*`` value."""
    if optim.get("name") not in OPTIMIZERS:
        raise ValueError(f"optim.name={optim.get('name')!r} is unknown; choose one of {sorted(OPTIMIZERS)}")
    if not float(optim.get("lr", 0)) > 0:
        raise ValueError(f"optim.lr must be > 0, got {optim.get('lr')}")
    if float(optim.get("weight_decay", 0.0)) < 0:
        raise ValueError(f"optim.weight_decay must be >= 0, got {optim.get('weight_decay')}")
    if optim.get("scheduler", "none") not in SCHEDULERS:
        raise ValueError(f"optim.scheduler={optim.get('scheduler')!r} is unknown; choose one of {SCHEDULERS}")
    if int(optim.get("warmup_steps", 0)) < 0:
        raise ValueError(f"optim.warmup_steps must be >= 0, got {optim.get('warmup_steps')}")
    for key in SCHEDULER_KEYS.get(optim.get("scheduler", "none"), ()):
        if key not in optim:
            raise ValueError(f"optim.scheduler={optim['scheduler']} needs optim.{key} (conf/optim/adam.yaml)")


def warmup_cosine(total_steps: int, warmup_steps: int, min_lr_ratio: float):
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizers(params: Any, optim: dict[str, Any], total_steps: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer for ``optim`` (checked by :func:`check_optim_config`)."""
    optimizer = OPTIMIZERS[optim["name"]](
        params,
        lr=float(optim["lr"]),
        weight_decay=float(optim.get("weight_decay", 0.0)),
        betas=tuple(optim.get("betas", (0.9, 0.999))),
    )
    name = optim.get("scheduler", "none")
    if name == "none":
        return {"optimizer": optimizer}
    if name == "cosine":
        factor = warmup_cosine(total_steps, int(optim.get("warmup_steps", 0)), float(optim.get("min_lr_ratio", 0.0)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    if name == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(optim["step_epochs"]), gamma=float(optim["gamma"])
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    # monitor/mode: null = val/psnr, max; a self-supervised run sets its own selection metric
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=str(optim.get("mode") or "max"),
        factor=float(optim["gamma"]),
        patience=int(optim["patience"]),
    )
    monitor = str(optim.get("monitor") or SUPERVISED_MONITOR)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "interval": "epoch"}}


def trainable(module: nn.Module):
    return (p for p in module.parameters() if p.requires_grad)
