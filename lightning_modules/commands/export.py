"""``export(cfg)``: turn a training checkpoint into a shippable model folder.

The folder holds ``model.safetensors`` (weights + network hyper-parameters) and the run's
``run_config.yaml``, so it works as ``ckpt=<folder>/model.safetensors`` in ``test.py`` and
``denoise.py`` exactly like a run folder. The copied config is made portable: current class names,
no output folders of the training machine, and every other absolute path relative to the folder the
export ran from (the repository root, for the shipped model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text
from lightning_modules.inference.input_range import measure_input_range, write_input_range
from lightning_modules.nets.checkpoints import export_safetensors, load_network
from lightning_modules.runs.folders import PRETRAINED_WEIGHTS, RUN_CONFIG, load_run_config, resolve_checkpoint

# Where the training machine wrote its outputs: meaningless anywhere else.
MACHINE_KEYS = {"default_root_dir", "dirpath", "output_dir"}


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
    run_cfg = load_run_config(run_dir)
    portable = portable_config(OmegaConf.to_container(run_cfg), Path.cwd())
    atomic_write_text(output / RUN_CONFIG, OmegaConf.to_yaml(OmegaConf.create(portable)))
    if int(cfg.input_range.images) > 0:
        record = training_input_range(run_cfg.data, int(cfg.input_range.images), cfg.input_range)
        print(f"input range ({record['images']} training inputs): {write_input_range(output, record)}")
    size_mb = target.stat().st_size / 1e6
    print(f"{checkpoint} -> {target} ({size_mb:.1f} MB, {'fp16' if cfg.half else 'fp32'})")
    return {"weights": str(target), "size_mb": size_mb}


def training_input_range(data_cfg: DictConfig, images: int, settings: DictConfig) -> dict[str, Any]:
    """The input-range record of the run's training inputs: ``images`` whole training images, evenly
    spaced, as the data module gives them unaugmented (real low-dose images, or simulated at fixed seeds)."""
    dataset = instantiate(data_cfg).full_images("train")
    chosen = np.unique(np.linspace(0, len(dataset) - 1, min(images, len(dataset))).round().astype(int))
    inputs = (dataset[int(i)]["low"][0].numpy() for i in chosen)
    return measure_input_range(inputs, str(settings.trained_on), settings.otherwise)


def portable_config(node: Any, base: Path) -> Any:
    """``node`` without the machine's output folders and with absolute paths made relative to ``base``."""
    if isinstance(node, dict):
        return {key: portable_config(value, base) for key, value in node.items() if key not in MACHINE_KEYS}
    if isinstance(node, list):
        return [portable_config(value, base) for value in node]
    if isinstance(node, str) and os.path.isabs(node):
        return os.path.relpath(node, base)
    return node
