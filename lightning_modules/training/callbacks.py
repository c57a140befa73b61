"""Training callbacks: validation image grids in TensorBoard and a plain best-weights export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from lightning_modules.nets.checkpoints import save_weights


class ValidationImageGrid(L.Callback):
    """Logs ``low-dose | denoised | high-dose`` rows for the first ``num_images`` validation images
    (``low-dose | denoised`` for data without clean images)."""

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images
        self._rows: list[torch.Tensor] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or len(self._rows) >= self.num_images or not isinstance(outputs, dict):
            return
        highs = batch["high"] if "high" in batch else [None] * len(batch["low"])  # noisy data: no clean image
        for low, pred, high in zip(batch["low"], outputs["pred"], highs):
            if len(self._rows) < self.num_images:
                images = [low.float(), pred.float()] + ([high.float()] if high is not None else [])
                self._rows.append(torch.cat(images, dim=-1).cpu())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._rows:
            return
        width = max(row.shape[-1] for row in self._rows)
        height = max(row.shape[-2] for row in self._rows)
        padded = [torch.nn.functional.pad(r, (0, width - r.shape[-1], 0, height - r.shape[-2])) for r in self._rows]
        grid = make_grid(padded, nrow=1, padding=2, pad_value=1.0).clamp(0.0, 1.0)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/low_denoised_high", grid, global_step=trainer.global_step)


def averaged_network(trainer: L.Trainer, pl_module: L.LightningModule) -> torch.nn.Module:
    """The network that validation just scored: the averaged copy when a weight-averaging callback
    (``callbacks=ema``) runs, since it has already swapped the raw weights back by ``on_validation_end``."""
    for callback in trainer.callbacks:
        average = getattr(callback, "_average_model", None)  # Lightning's WeightAveraging keeps it here
        if isinstance(callback, WeightAveraging) and average is not None:
            return average.module.net
    return pl_module.net


class BestWeightsExport(L.Callback):
    """Keeps the network weights of the best validation score at one stable path.

    The file (``best_model.pth`` by default, the original project's habit) holds only tensors and
    plain values, so ``torch.load(path, weights_only=True)`` reads it without Lightning.
    """

    def __init__(
        self, dirpath: str, filename: str = "best_model.pth", monitor: str = "val/psnr", mode: str = "max"
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"BestWeightsExport mode={mode!r}: use max or min")
        self.path = Path(dirpath) / filename
        self.monitor = monitor
        self.mode = mode
        self.best = -math.inf if mode == "max" else math.inf

    def _better(self, value: float) -> bool:
        return value > self.best if self.mode == "max" else value < self.best

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not torch.isfinite(value) or not self._better(float(value)):
            return
        self.best = float(value)
        if trainer.is_global_zero:
            save_weights(
                self.path,
                averaged_network(trainer, pl_module),
                dict(pl_module.hparams),
                extra={"epoch": trainer.current_epoch, "global_step": trainer.global_step, self.monitor: self.best},
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict.get("best", -math.inf if self.mode == "max" else math.inf))
