"""``LitDenoiser``: the LightningModule that trains and validates :class:`DenoisingUnet` (the test split is
scored after training by :func:`lightning_modules.commands.evaluate.evaluate`, as ``scripts/test.py`` does)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from lightning_modules.nets.losses import build_loss
from lightning_modules.nets.metrics import METRIC_NAMES, image_metrics
from lightning_modules.nets.unet import DenoisingUnet, network_defaults
from lightning_modules.training.optim import build_optimizers, check_optim_config, trainable
from lightning_modules.training.safeguards import NonFiniteLossError


class StageMetrics(nn.Module):
    """Validation means over images of PSNR/SSIM/MSE for the model output and for the noisy input."""

    def __init__(self) -> None:
        super().__init__()
        self.means = nn.ModuleDict(
            {f"{name}{suffix}": MeanMetric() for name in METRIC_NAMES for suffix in ("", "_noisy")}
        )

    def update(self, pred: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        for name, values in image_metrics(pred, high).items():
            self.means[name].update(values)
        # An input identical to its target (a noise family's clean share) has an infinite PSNR, which
        # would make the mean infinite: the noisy-input means are over the inputs that carry noise.
        noisy = (low.float() != high.float()).flatten(1).any(dim=1)
        if noisy.any():
            for name, values in image_metrics(low[noisy], high[noisy]).items():
                self.means[f"{name}_noisy"].update(values)

    def compute(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}/{key}": metric.compute() for key, metric in self.means.items()}

    def reset(self) -> None:
        for metric in self.means.values():
            metric.reset()


class LitDenoiser(L.LightningModule):
    """Trains a :class:`DenoisingUnet` on ``{"low", "high"}`` batches.

    All arguments are plain values (strings, numbers, dicts of them), saved with
    ``save_hyperparameters`` so a checkpoint rebuilds the model on its own and loads with
    ``torch.load(weights_only=True)``.

    Args:
        loss: ``{"name": "l1" | "mse" | "charbonnier" | "ssim_l1", **params}`` (``conf/loss``).
        optim: ``{"name": "adam" | "adamw", "lr", "weight_decay", "scheduler", ...}`` (``conf/optim``).
        channels_last: run the network in channels-last memory format (faster on CPU and GPU).
        **network: :class:`DenoisingUnet`'s arguments (``conf/model``); the ones not given take
            DenoisingUnet's own defaults, and all are saved, so the checkpoint names its network fully.

    The defaults of a training run live in ``conf/`` only: this class has none of its own.
    """

    def __init__(
        self, loss: dict[str, Any], optim: dict[str, Any], channels_last: bool = False, **network: Any
    ) -> None:
        super().__init__()
        loss, optim = dict(loss), dict(optim)
        check_optim_config(optim)
        network = {**network_defaults(), **network}
        network["decoder_channels"] = [int(c) for c in network["decoder_channels"]]
        self.save_hyperparameters({**network, "channels_last": bool(channels_last), "loss": loss, "optim": optim})
        self.net = DenoisingUnet(**network)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.loss_fn = build_loss(**loss)
        self.val_metrics = StageMetrics()
        self.val_psnr_best = MaxMetric()
        self.val_psnr_best.persistent(True)  # kept in checkpoints, so a resumed run knows its best

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        pred = self(batch["low"])
        loss = self.loss_fn(pred.float(), batch["high"])
        return self._log_training_loss(loss, batch_idx, len(pred))

    def _log_training_loss(self, loss: torch.Tensor, batch_idx: int, batch_size: int) -> torch.Tensor:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}); stopped without saving these weights. The last good checkpoint is "
                "checkpoints/last.ckpt of this run; try a lower optim.lr"
            )
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        pred = self(batch["low"]).float()
        loss = self.loss_fn(pred, batch["high"])
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(pred))
        self.val_metrics.update(pred, batch["low"], batch["high"])
        return {"pred": pred.detach().clamp(0.0, 1.0)}

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute("val")
        self.val_metrics.reset()
        if self.trainer.sanity_checking:  # the sanity check must not count as a best score
            values["val/psnr_best"] = values["val/psnr"]
        else:
            self.val_psnr_best.update(values["val/psnr"])
            values["val/psnr_best"] = self.val_psnr_best.compute()
        self.log("val/psnr", values.pop("val/psnr"), prog_bar=True, sync_dist=True)
        self.log_dict(values, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimizers(trainable(self), self.hparams.optim, int(self.trainer.estimated_stepping_batches))
