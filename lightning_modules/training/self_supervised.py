"""Self-supervised training (``training=neighbor2neighbor|n2v2|n2v2_wide|r2r``): the LightningModule and
what ``train(cfg)`` does before it (checks, the metric that picks the best checkpoint, the noise level).

The network and everything saved with it are :class:`LitDenoiser`'s; only the loss, the validation
and the intensity map differ. Losses and maps live in :mod:`lightning_modules.selfsup`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torchmetrics import CatMetric, MaxMetric, MeanMetric, MinMetric

from lightning_modules.nets.skip import keeps_blind_spot
from lightning_modules.selfsup.config import (
    SUPERVISED,
    check_training_config,
    follow_selection_metric,
    fusion_window,
    method_of,
    needs_noise_level,
)
from lightning_modules.selfsup.fusion import FUSION_KEY, fuse_at_noise_level
from lightning_modules.selfsup.intensity import MAP_KEY, fit_affine, image_moments, mapped_psnr
from lightning_modules.selfsup.losses import build_self_supervised_loss
from lightning_modules.selfsup.noise_level import NoiseLevel, data_noise_level, lacks_dose
from lightning_modules.training.module import LitDenoiser

EVAL_SEED = 20_240_601  # fixes the random views of the validation/test self-supervised loss


class SelfSupervisedDenoiser(LitDenoiser):
    """:class:`LitDenoiser` trained by a self-supervised loss on ``batch["low"]`` alone.

    ``batch["high"]``, where the data has it, is used for validation and test metrics only:
    PSNR/SSIM of the raw output (``val/psnr``...), and ``val/psnr_mapped``, the PSNR after the global
    intensity map fitted on the validation pairs of that epoch. With ``training.intensity_map=val``
    that map is stored with each checkpoint (hyper-parameter ``intensity_map``) and applied at test
    time. Without clean images the self-supervised loss on the validation images (``val/ssl_loss``,
    the same random views every epoch) is what there is to pick a checkpoint by.

    Args:
        training: the ``training`` node (plain values), for R2R with the resolved ``noise_level``.
        intensity_map: a stored map (checkpoints set it; ``None`` for a new model).
        loss, optim, channels_last, network: as :class:`LitDenoiser` (``loss`` is unused).
    """

    def __init__(
        self,
        loss: dict[str, Any],
        optim: dict[str, Any],
        training: dict[str, Any],
        channels_last: bool = False,
        intensity_map: dict[str, Any] | None = None,
        **network: Any,
    ) -> None:
        super().__init__(loss=loss, optim=optim, channels_last=channels_last, **network)
        training = dict(training)
        check_training_config(training)
        if training["method"] == "supervised":
            raise ValueError("training.method=supervised: use LitDenoiser")
        self.hparams["training"] = training
        self.hparams[MAP_KEY] = dict(intensity_map) if intensity_map else None
        self.ssl_loss = build_self_supervised_loss(**training)
        self.noise_level = NoiseLevel(training["noise_level"]) if "noise_level" in training else None
        if needs_noise_level(training) and self.noise_level is None:
            raise ValueError(f"training.method={training['method']} needs a resolved noise_level")
        window = fusion_window(training)
        self.hparams[FUSION_KEY] = {"window": window, "noise_level": training["noise_level"]} if window else None
        self.val_ssl = MeanMetric()
        self.val_moments = CatMetric()
        self.psnr_mapped_best, self.ssl_loss_best = MaxMetric(), MinMetric()
        self.psnr_mapped_best.persistent(True)
        self.ssl_loss_best.persistent(True)
        self._scored = False  # whether this epoch's validation batches had clean images

    def _sigma(self, batch: dict[str, Any]) -> torch.Tensor | float | None:
        if self.noise_level is None or not getattr(self.ssl_loss, "needs_sigma", False):
            return None
        return self.noise_level(batch["low"], batch.get("dose"))

    def denoise(self, low: torch.Tensor, dose: torch.Tensor | float | None = None) -> torch.Tensor:
        """The network's output (fp32), fused with ``low`` where the model says so (N2V2, ``fusion``)."""
        pred = self(low).float()
        fusion = self.hparams.get(FUSION_KEY)
        if not fusion:
            return pred
        return fuse_at_noise_level(pred, low, self.noise_level, fusion["window"], dose)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.ssl_loss(self, batch["low"], sigma=self._sigma(batch))
        return self._log_training_loss(loss, batch_idx, len(batch["low"]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        low = batch["low"]
        generator = torch.Generator(device=low.device).manual_seed(EVAL_SEED + batch_idx)
        self.val_ssl.update(self.ssl_loss(self, low, generator=generator, sigma=self._sigma(batch)), len(low))
        pred = self.denoise(low, batch.get("dose"))
        if "high" in batch:
            self._scored = True
            self.val_moments.update(image_moments(pred, batch["high"]))
            self.val_metrics.update(pred, low, batch["high"])
        return {"pred": pred.detach().clamp(0.0, 1.0)}

    def on_validation_epoch_start(self) -> None:
        self._scored = False

    def on_validation_epoch_end(self) -> None:
        sanity = self.trainer.sanity_checking
        ssl = self.val_ssl.compute()
        self.val_ssl.reset()
        values = {"val/ssl_loss": ssl}
        if not sanity:
            self.ssl_loss_best.update(ssl)
        values["val/ssl_loss_best"] = ssl if sanity else self.ssl_loss_best.compute()
        if self._scored:
            super().on_validation_epoch_end()  # val/psnr, val/ssim, ... of the raw output, val/psnr_best
            moments = self.val_moments.compute()
            gain, offset = fit_affine(moments)
            mapped = mapped_psnr(moments, gain, offset).mean().float()
            values.update({"val/psnr_mapped": mapped, "val/intensity_gain": gain, "val/intensity_offset": offset})
            if not sanity:
                self.psnr_mapped_best.update(mapped)
                if self.hparams["training"].get("intensity_map", "val") == "val":
                    images = int(moments.reshape(-1, 6).shape[0])
                    self.hparams[MAP_KEY] = {"gain": gain, "offset": offset, "split": "val", "images": images}
            values["val/psnr_mapped_best"] = mapped if sanity else self.psnr_mapped_best.compute()
        else:
            self.val_metrics.reset()
        self.val_moments.reset()
        self.log_dict(values, sync_dist=True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the map belongs to the weights it was fitted with: a resumed run continues with last.ckpt's map
        stored = checkpoint.get("hyper_parameters", {}).get(MAP_KEY)
        self.hparams[MAP_KEY] = dict(stored) if stored else None


def _data_has_targets(cfg: DictConfig) -> bool:
    target = OmegaConf.select(cfg, "data._target_")
    try:
        return bool(getattr(get_class(target), "has_targets", True)) if target else True
    except Exception:  # noqa: BLE001 - an unknown class fails later, where instantiating it names it
        return True


def prepare_training(cfg: DictConfig) -> str:
    """Check ``cfg.training`` against the data and point the callbacks at the metric that picks the
    best checkpoint (unchanged for supervised runs); return that metric. Runs before any work."""
    training = OmegaConf.to_container(cfg.training, resolve=True) if cfg.get("training") else dict(SUPERVISED)
    check_training_config(training)
    has_targets = _data_has_targets(cfg)
    if training["method"] == "supervised" and not has_targets:
        raise ValueError(
            f"training=supervised needs clean images, and data={cfg.data._target_.rsplit('.', 1)[-1]} has none; "
            "choose a self-supervised method: training=neighbor2neighbor, n2v2 or r2r"
        )
    residual = OmegaConf.select(cfg, "model.residual")
    if training["method"] == "n2v2" and not keeps_blind_spot(residual):
        raise ValueError(
            f"training=n2v2 needs model.residual=false or lowpass (got {residual}): that path adds each pixel's own "
            "noisy value to a correction learned while that value was hidden, so the noise would pass through"
        )
    monitor, _ = follow_selection_metric(cfg, has_targets)
    return monitor


def build_module(cfg: DictConfig, datamodule: L.LightningDataModule, **kwargs: Any) -> LitDenoiser:
    """:class:`LitDenoiser` for ``training=supervised``, else :class:`SelfSupervisedDenoiser`, with
    the noise level of R2R and of N2V2's fusion resolved (given, estimated or physical) before any training."""
    if method_of(cfg) == "supervised":
        return LitDenoiser(**kwargs)
    training = OmegaConf.to_container(cfg.training, resolve=True)
    if needs_noise_level(training):
        dose = OmegaConf.select(cfg, "data.dose")
        training["noise_level"] = data_noise_level(training.get("sigma"), datamodule, dose)
        if fusion_window(training) and lacks_dose(training["noise_level"]):
            raise ValueError(
                f"training.fusion_window={training['fusion_window']} with data.dose={dose}: fusion needs each image's "
                "noise level, and after training (test.py, denoise.py) the dose of an image from a range is unknown; "
                "set training.fusion_window=0, or training.sigma=<noise std on the [0, 1] scale>"
            )
        print(f"training={training['method']}: noise level {training['noise_level']}")
    return SelfSupervisedDenoiser(training=training, **kwargs)
