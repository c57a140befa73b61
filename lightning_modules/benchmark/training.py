"""Training throughput: the full Lightning loop (loader, simulator, logging) against a raw PyTorch
loop on the same model and batch size, and the training loader alone. Imports Lightning when run."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_modules.benchmark.context import Context
from lightning_modules.benchmark.report import Row
from lightning_modules.inference.backends import bf16_native

# variant: (bf16 autocast / bf16-mixed, channels_last)
VARIANTS = {"fp32": (False, False), "channels_last": (False, True), "bf16": (True, True)}
# levers tried on the raw loop of the last variant: fused Adam kernel, torch.compile of the network
LEVERS = {"fused_adam": {"fused": True}, "compile": {"compiled": True}}
OPTIM = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "none"}


def _shape(cfg: Any, bf16: bool) -> tuple[int, int, int, int]:
    """(batch, patch, warm-up steps, timed steps); smaller where bf16 is emulated."""
    if bf16 and not bf16_native("cpu"):
        e = cfg.emulated
        return int(e.batch_size), int(e.patch_size), int(e.warmup_steps), int(e.steps)
    return int(cfg.batch_size), int(cfg.patch_size), int(cfg.warmup_steps), int(cfg.steps)


def raw_loop(
    batch: int,
    patch: int,
    warmup: int,
    steps: int,
    bf16: bool,
    channels_last: bool,
    fused: bool = False,
    compiled: bool = False,
) -> float:
    """Seconds per step of a plain loop: forward, L1, backward, Adam, on one fixed batch; ``fused``:
    Adam's fused kernel instead of the default multi-tensor one; ``compiled``: ``torch.compile`` of the
    network (its compilation falls in the warm-up steps)."""
    from lightning_modules.nets.unet import DenoisingUnet

    torch.manual_seed(0)
    net = DenoisingUnet(residual=True).train()
    low, high = torch.rand(batch, 1, patch, patch), torch.rand(batch, 1, patch, patch)
    if channels_last:
        net, low = net.to(memory_format=torch.channels_last), low.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=OPTIM["lr"], **({"fused": True} if fused else {}))
    if compiled:
        net = torch.compile(net)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(low)
        loss = F.l1_loss(pred.float(), high)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sum(times[warmup:]) / steps


def lightning_loop(
    data_cfg: DictConfig,
    batch: int,
    patch: int,
    warmup: int,
    steps: int,
    bf16: bool,
    channels_last: bool,
    log_dir: Path,
    log_every_n_steps: int,
) -> float:
    """Seconds per step of ``Trainer.fit`` (data loading, noise simulation, logging included),
    measured between the ends of training batches ``warmup`` and ``warmup + steps``."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning_modules.training.module import LitDenoiser

    class StepTimes(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())

    torch.manual_seed(0)
    model = LitDenoiser(residual=True, channels_last=channels_last, loss={"name": "l1"}, optim=dict(OPTIM))
    datamodule = instantiate(data_cfg, batch_size=batch, patch_size=patch)
    timer = StepTimes()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed" if bf16 else "32-true",
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(str(log_dir), name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=log_every_n_steps,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=datamodule)
    if len(timer.ends) < warmup + steps or warmup < 1:
        raise RuntimeError(
            f"training stopped after {len(timer.ends)} steps; need warm-up >= 1 and {warmup + steps} steps"
        )
    return (timer.ends[warmup + steps - 1] - timer.ends[warmup - 1]) / steps


def run_training(ctx: Context, cfg: Any, data_cfg: DictConfig) -> list[Row]:
    """``cfg``: ``variants``, ``batch_size``, ``patch_size``, ``warmup_steps``, ``steps``,
    ``log_every_n_steps``, ``emulated`` (smaller settings where bf16 is emulated)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    rows = []
    for variant in cfg.variants:
        if variant not in VARIANTS:
            raise ValueError(f"training.variants: {variant!r} is unknown; choose from {', '.join(VARIANTS)}")
        bf16, channels_last = VARIANTS[variant]
        batch, patch, warmup, steps = _shape(cfg, bf16)
        mpix = batch * patch * patch / 1e6
        raw_s = raw_loop(batch, patch, warmup, steps, bf16, channels_last)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lit_s = lightning_loop(
                data_cfg,
                batch,
                patch,
                warmup,
                steps,
                bf16,
                channels_last,
                ctx.run_dir / "training_logs" / variant,
                int(cfg.log_every_n_steps),
            )
        ratio = raw_s / lit_s
        size = f"{batch}×{patch}²"
        emulated = "; bf16 emulated: smaller batch" if bf16 and not bf16_native("cpu") else ""
        ctx.results[("training", variant)] = {
            "raw_mpix_per_s": mpix / raw_s,
            "lightning_mpix_per_s": mpix / lit_s,
            "ratio": ratio,
            "lightning_samples_per_s": batch / lit_s,
        }
        rows.append(
            Row(
                "training",
                f"raw loop, {variant}",
                size,
                mpix / raw_s,
                "Mpix/s",
                ctx.pct_of_ceiling(mpix / raw_s, "cpu", bf16, training=True),
                None,
                f"{batch / raw_s:.1f} samples/s, {raw_s:.2f} s/step{emulated}",
            )
        )
        rows.append(
            Row(
                "training",
                f"Lightning loop, {variant}",
                size,
                mpix / lit_s,
                "Mpix/s",
                ctx.pct_of_ceiling(mpix / lit_s, "cpu", bf16, training=True),
                None,
                f"{batch / lit_s:.1f} samples/s, {lit_s:.2f} s/step, {100 * ratio:.0f} % of the raw loop{emulated}",
            )
        )
    for lever in cfg.get("levers") or []:
        if lever not in LEVERS:
            raise ValueError(f"training.levers: {lever!r} is unknown; choose from {', '.join(LEVERS)}")
        start = time.perf_counter()
        lever_s = raw_loop(batch, patch, warmup, steps, bf16, channels_last, **LEVERS[lever])
        total = time.perf_counter() - start
        ctx.results[("training", f"{variant}+{lever}")] = {"raw_mpix_per_s": mpix / lever_s, "vs_raw": raw_s / lever_s}
        rows.append(
            Row(
                "training",
                f"raw loop, {variant} + {lever}",
                size,
                mpix / lever_s,
                "Mpix/s",
                ctx.pct_of_ceiling(mpix / lever_s, "cpu", bf16, training=True),
                None,
                f"{lever_s:.2f} s/step, {raw_s / lever_s:.2f}× the raw loop; {total:.0f} s in all (warm-up included)",
            )
        )
    return rows


def run_loader(ctx: Context, cfg: Any, data_cfg: DictConfig) -> list[Row]:
    """The training loader alone (``datamodules.throughput``) at the training batch and patch size."""
    from datamodules.throughput import loader_throughput

    datamodule = instantiate(data_cfg, batch_size=int(cfg.batch_size), patch_size=int(cfg.patch_size))
    result = loader_throughput(datamodule, int(cfg.batches), int(cfg.warmup_batches))
    ctx.results["loader_mpix_per_s"] = result["mpix_per_s"]
    workers = OmegaConf.select(data_cfg, "num_workers")
    return [
        Row(
            "loader",
            f"{OmegaConf.select(data_cfg, '_target_').rsplit('.', 1)[-1]}, num_workers={workers}",
            f"{cfg.batch_size}×{cfg.patch_size}²",
            result["mpix_per_s"],
            "Mpix/s",
            None,
            None,
            f"{result['patches_per_s']:.0f} patches/s over {result['batches']} batches",
        )
    ]
