"""``export(cfg)``: turn a training checkpoint into a shippable model folder.

The folder holds ``model.safetensors`` (weights + network hyper-parameters) and the run's
``run_config.yaml``, so it works as ``ckpt=<folder>/model.safetensors`` in ``test.py`` and
``denoise.py`` exactly like a run folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from datamodules.atomic import atomic_write
from lightning_modules.checkpoint_io import export_safetensors, load_network
from lightning_modules.runs import PRETRAINED_WEIGHTS, RUN_CONFIG, resolve_checkpoint


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt`` of ``cfg.run`` to ``cfg.output``/model.safetensors (+ its run config)."""
    checkpoint, run_dir = resolve_checkpoint(str(cfg.ckpt), cfg.get("run"), cfg.paths.log_dir)
    if run_dir is None:
        raise FileNotFoundError(f"ckpt={cfg.ckpt}: not inside a training run folder; pass run=<run folder>")
    output = Path(cfg.output).expanduser()
    target = output / PRETRAINED_WEIGHTS
    if target.exists() and not cfg.overwrite:
        raise FileExistsError(f"output={output}: {PRETRAINED_WEIGHTS} exists; pass overwrite=true to replace it")
    net, hparams = load_network(checkpoint)
    export_safetensors(target, net, hparams, half=bool(cfg.half))
    atomic_write(output / RUN_CONFIG, lambda tmp: shutil.copyfile(run_dir / RUN_CONFIG, tmp))
    size_mb = target.stat().st_size / 1e6
    print(f"{checkpoint} -> {target} ({size_mb:.1f} MB, {'fp16' if cfg.half else 'fp32'})")
    return {"weights": str(target), "size_mb": size_mb}
