"""``train(cfg)``: build data, model, callbacks, loggers and trainer from a composed config, fit, test."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from datamodules.io.atomic import atomic_write_text, ensure_writable_dir
from datamodules.patch_schedule import check_step_budget, parse_patch_schedule
from datamodules.preflight import decode_all
from lightning_modules.commands.evaluate import evaluate
from lightning_modules.nets.checkpoints import load_weights_into
from lightning_modules.nets.losses import LOSSES
from lightning_modules.runs.folders import (
    CHECKPOINT_DIR,
    NAMED_CHECKPOINTS,
    RUN_CONFIG,
    resolve_checkpoint,
    save_run_config,
)
from lightning_modules.runs.hydra import CONTINUES_FILE, write_job_status
from lightning_modules.runs.lock import RunLock
from lightning_modules.runs.ranks import is_rank_zero
from lightning_modules.runs.records import mark_completed, read_run_info, start_attempt
from lightning_modules.runs.resume import checkpoint_progress, find_resumable
from lightning_modules.training.distributed import check_distributed_launch, finish_process_group
from lightning_modules.training.optim import check_optim_config
from lightning_modules.training.safeguards import AtomicCheckpointIO, check_free_space
from lightning_modules.training.self_supervised import build_module, prepare_training
from lightning_modules.training.stages import train_stages


def _positive(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_none:
        return
    if value is None or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")


def check_train_config(cfg: DictConfig) -> None:
    """Fail fast, naming the key, on values that would only break later (after minutes of work)."""
    check_optim_config(OmegaConf.to_container(cfg.optim, resolve=True))
    _positive(cfg, "data.batch_size")
    _positive(cfg, "data.patch_size", allow_none=True)
    if cfg.loss.get("name") not in LOSSES:
        raise ValueError(f"loss.name={cfg.loss.get('name')!r} is unknown; choose one of {sorted(LOSSES)}")
    patch = cfg.data.get("patch_size")
    if patch is not None and patch % 32:
        raise ValueError(f"data.patch_size={patch} must be a multiple of 32 (the network's downsampling factor)")
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None and max_epochs != -1 and max_epochs < 1:
        raise ValueError(f"trainer.max_epochs must be >= 1 (or -1 for no limit), got {max_epochs}")
    if has_patch_schedule(cfg):
        data = OmegaConf.to_container(cfg.data, resolve=True)
        parse_patch_schedule(data["patch_schedule"], data.get("patch_size"), data["batch_size"])
        check_step_budget(cfg.trainer.get("max_steps"), max_epochs)


def has_patch_schedule(cfg: DictConfig) -> bool:
    """Whether ``data.patch_schedule`` changes the training patches during the run (the trainer then
    rebuilds the training loader every epoch)."""
    return cfg.data.get("patch_schedule") is not None


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "_target_":
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)

    for group in ("data", "model", "loss", "optim", "training"):
        walk(group, container.get(group, {}))
    flat["seed"] = container.get("seed")
    flat["trainer.max_epochs"] = container["trainer"].get("max_epochs")
    flat["trainer.precision"] = str(container["trainer"].get("precision"))
    return flat


def _resume_if_unfinished(cfg: DictConfig, lock: RunLock | None) -> dict[str, Any] | None:
    """With ``resume=auto``, point ``cfg`` at the unfinished run of the same command (if any) and, on
    rank 0, lock it into ``lock``: a run another process is training refuses, naming that process."""
    if cfg.get("ckpt_path"):
        return None  # an explicit checkpoint wins
    run_dir = find_resumable(cfg)
    if run_dir is None:
        return None
    if lock is not None:
        lock.run_dir = run_dir
        lock.acquire(advice="wait for it to end, or use resume=never to start a new run")
        info = read_run_info(run_dir)
        if info is not None and info.get("completed"):  # it finished while we were looking
            lock.release()
            return None
    last = run_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS["last"]
    progress = checkpoint_progress(last)
    job_dir = Path(cfg.paths.output_dir)
    if is_rank_zero() and job_dir.is_dir() and job_dir.resolve() != run_dir.resolve():
        # Hydra made this job a folder of its own; the job's status belongs with the run it continues.
        atomic_write_text(job_dir / CONTINUES_FILE, f"{run_dir.resolve()}\n")
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.ckpt_path = str(last)
    print(  # plain print: a wrapped path would be hard to copy
        f"resume=auto: continuing {run_dir} from epoch {progress['epoch']}, step {progress['global_step']} "
        "(resume=never starts a new run)",
        file=sys.stderr,
    )
    return {"checkpoint": str(last), **progress}


def _interrupted(cfg: DictConfig, job_dir: Path) -> None:
    """After Ctrl+C (SIGINT): record ``INTERRUPTED`` in ``job_status.json`` and say how to go on."""
    if not is_rank_zero():
        return
    run_dir = Path(cfg.paths.output_dir)
    last = run_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS["last"]
    try:
        progress = checkpoint_progress(last) if last.is_file() else None
    except ValueError:
        progress = None
    if progress is None:
        hint = f"interrupted before the first checkpoint of {run_dir}; the same command starts afresh"
    else:
        hint = (
            f"interrupted: {last} holds epoch {progress['epoch']}, step {progress['global_step']} (the last "
            "validation); run the same command again to continue from it (resume=auto), or add resume=never "
            "to start afresh"
        )
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - the record must not fail for want of the overrides
        pass
    record = {
        "status": "INTERRUPTED",
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        "overrides": overrides,
        "error": "KeyboardInterrupt: interrupted (SIGINT)",
        "hint": hint,
    }
    for folder in dict.fromkeys([job_dir, run_dir]):
        if folder.is_dir():
            try:
                write_job_status(folder, record)
            except OSError as err:
                print(f"could not write job_status.json in {folder}: {err}", file=sys.stderr)
    print(hint, file=sys.stderr, flush=True)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and, with ``cfg.test``, test the best checkpoint); return the final metrics as floats.

    The run folder ``cfg.paths.output_dir`` receives ``run_config.yaml`` (the resolved config that
    ``scripts/test.py`` rebuilds from), ``run_info.json`` (fingerprints, versions, attempts),
    ``checkpoints/{best,last}.ckpt``, ``checkpoints/best_model.pth`` and the TensorBoard events.
    With ``resume=auto`` an unfinished run of the same command continues in its own folder.
    A config with ``stages`` trains each stage as such a run (:mod:`lightning_modules.training.stages`).
    """
    if cfg.get("stages"):
        return train_stages(cfg, train)
    check_train_config(cfg)
    monitor = prepare_training(cfg)  # training=<method>: checked, and the metric that picks best.ckpt
    check_distributed_launch(cfg)
    job_dir = Path(cfg.paths.output_dir)  # Hydra's folder for this job, before a resume moves output_dir
    lock = RunLock(job_dir) if is_rank_zero() else None  # one process trains a run folder at a time
    try:
        resumed_from = _resume_if_unfinished(cfg, lock)
        output_dir = ensure_writable_dir(cfg.paths.output_dir, "paths.output_dir")
        if lock is not None and not lock.held:
            lock.run_dir = output_dir
            lock.acquire(advice="wait for it to end, or give this run another paths.output_dir")
        return _train_in(cfg, output_dir, job_dir, monitor, resumed_from)
    except KeyboardInterrupt:  # Ctrl+C outside fit (inside, Lightning turns it into SystemExit: _train_in)
        _interrupted(cfg, job_dir)
        raise SystemExit(130) from None
    finally:
        if lock is not None:
            lock.release()


def _train_in(
    cfg: DictConfig, output_dir: Path, job_dir: Path, monitor: str, resumed_from: dict[str, Any] | None
) -> dict[str, float]:
    """The body of :func:`train`, with the run folder chosen and locked."""
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    check_data_before_training(cfg, datamodule)
    model = build_module(  # LitDenoiser, or its self-supervised subclass for training=<method>
        cfg,
        datamodule,
        **OmegaConf.to_container(cfg.model, resolve=True),
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
    )
    if cfg.get("init_weights") and not cfg.get("ckpt_path"):  # a resumed run has its own weights
        source, _ = resolve_checkpoint(str(cfg.init_weights), None, cfg.paths.log_dir)
        load_weights_into(model.net, source, OmegaConf.to_container(cfg.model, resolve=True), "init_weights")
    callbacks = _instantiate_group(cfg.get("callbacks"))
    check_free_space(output_dir, model, callbacks)  # before an epoch is spent, not at its first checkpoint
    if is_rank_zero():  # with DDP every rank runs this function; one writes the records
        save_run_config(cfg, output_dir / RUN_CONFIG, overrides={"data.root": str(datamodule.root)})
        start_attempt(output_dir, cfg, datamodule.root, resumed_from=resumed_from)

    loggers = _instantiate_group(cfg.get("logger"))
    reload = {"reload_dataloaders_every_n_epochs": 1} if has_patch_schedule(cfg) else {}  # a new phase's loader
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **reload
    )
    for logger in loggers:
        logger.log_hyperparams(_flat_hparams(cfg))

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SystemExit:  # Lightning turns Ctrl+C (SIGINT) into sys.exit(1) after a graceful shutdown
        if not trainer.interrupted:
            raise
        _interrupted(cfg, job_dir)
        raise SystemExit(130) from None
    distributed = trainer.world_size > 1
    if distributed:
        finish_process_group()
    if not trainer.interrupted and trainer.is_global_zero:
        mark_completed(output_dir)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test") and trainer.is_global_zero:
        test_metrics = score_test_split(cfg, datamodule, output_dir, best_checkpoint(trainer, monitor))
        for logger in loggers:  # beside the validation curves in TensorBoard
            logger.log_metrics(test_metrics, step=trainer.global_step)
            logger.save()
        metrics.update(test_metrics)
    return metrics


def check_data_before_training(cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """List and pair every split the run uses (the test split too when ``cfg.test``), then decode each
    image once (``cfg.preflight``), so a missing partner or a bad file stops the run before its first step."""
    datamodule.setup("fit")
    splits = ["train", "val"] + (["test"] if cfg.get("test") else [])
    for split in splits:
        datamodule.dataset(split)
    preflight = cfg.get("preflight") or {}
    if not preflight.get("decode", True):
        return
    files = [path for split in splits for path in datamodule.image_files(split)]
    cache = preflight.get("cache_file")
    bit_depth = getattr(datamodule, "bit_depth", None)  # data.bit_depth=12: every value must fit 12 bits
    result = decode_all(files, cache_file=cache, workers=preflight.get("workers"), bit_depth=bit_depth)
    print(result.summary(), file=sys.stderr)


def best_checkpoint(trainer: L.Trainer, monitor: str = "val/psnr") -> str | None:
    """The best checkpoint file of the ModelCheckpoint that monitors ``monitor`` (whatever the order
    of the callbacks); ``None`` when there is none on disk."""
    for callback in trainer.checkpoint_callbacks:
        best = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", None) == monitor and best and Path(best).is_file():
            return best
    return None


def score_test_split(
    cfg: DictConfig, datamodule: L.LightningDataModule, output_dir: Path, ckpt: str | None
) -> dict[str, float]:
    """Score ``ckpt`` (the last checkpoint when there is no best) on the test split with
    :func:`~lightning_modules.commands.evaluate.evaluate`, the function ``scripts/test.py`` runs, so a
    run's own test and a later ``test.py ckpt=best`` give the same numbers (fp32, as ``test.py``'s default,
    whatever precision trained: a bf16 CPU would otherwise score differently from one without bf16);
    ``test/<metric>`` means."""
    if not getattr(datamodule, "has_targets", True):
        print("test split: no full-dose images to score against; not tested", file=sys.stderr)
        return {}
    test_cfg = OmegaConf.create(
        {
            "ckpt": ckpt or str(output_dir / CHECKPOINT_DIR / NAMED_CHECKPOINTS["last"]),
            "run": str(output_dir),
            "split": "test",
            "device": "auto",
            "precision": "32",
            "write_images": False,
            "paths": OmegaConf.to_container(cfg.paths, resolve=True),
        }
    )
    summary = evaluate(test_cfg)
    return {f"test/{name}": values["mean"] for name, values in summary["metrics"].items()}
