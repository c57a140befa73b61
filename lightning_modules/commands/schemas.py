"""The type of every setting, as Hydra structured configs: ``conf/*.yaml`` hold the values, these the types.

Each ``conf`` file names its class in its defaults list (``/schema/...``), so Hydra checks the shipped
values and every command-line override against it and names the key of a wrong one
(``optim.lr=abc``: ``Value 'abc' ... could not be converted to Float``, ``full_key: optim.lr``) before
any work starts. A field without a default (``MISSING``) must be set by the yaml; the few defaults here
are Lightning's own, for Trainer settings that only some options set. Groups whose options differ in
kind (data, loss, training) have one class per option; noise models check their own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PathText = str  # a path; a folder called 2024 arrives from the command line as a number and becomes "2024"


# --- data (conf/data) -------------------------------------------------------------------------------
@dataclass
class LoaderConfig:
    _target_: str = MISSING
    root: PathText | None = MISSING
    batch_size: int = MISSING
    patch_size: int | None = MISSING
    patch_schedule: list[Any] | None = MISSING
    patches_per_image: int = MISSING
    augment: bool = MISSING
    num_workers: int = MISSING
    cache: bool = MISSING
    eval_batch_size: int = MISSING
    bit_depth: int | str = MISSING
    min_foreground: float = MISSING


@dataclass
class PairsConfig(LoaderConfig):
    train_subset: int | None = MISSING
    real_fraction: float = MISSING
    train_noise: Any = None  # a conf/data/noise option: fresh training noise


@dataclass
class SampleConfig(LoaderConfig):
    dose: Any = MISSING  # a dose, or [low, high]: checked by the data module
    seed: int = MISSING
    noise: Any = MISSING


@dataclass
class SimulatedConfig(SampleConfig):
    val_fraction: float = MISSING
    test_fraction: float = MISSING


@dataclass
class NoisyConfig(LoaderConfig):
    val_fraction: float = MISSING
    test_fraction: float = MISSING


# --- network, loss, optimizer, training method ----------------------------------------------------------
@dataclass
class ModelConfig:
    encoder_name: str = MISSING
    encoder_weights: str | None = MISSING
    residual: bool | str = MISSING
    decoder_attention_type: str | None = MISSING
    decoder_channels: list[int] = MISSING
    norm: str = MISSING
    eval_margin: int = MISSING
    channels_last: bool = MISSING
    input_block: bool = MISSING


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class CharbonnierConfig(LossConfig):
    eps: float = MISSING


@dataclass
class SsimL1Config(LossConfig):
    alpha: float = MISSING


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    betas: list[float] = MISSING
    scheduler: str = MISSING
    warmup_steps: int = MISSING
    min_lr_ratio: float = MISSING
    step_epochs: int = MISSING
    gamma: float = MISSING
    patience: int = MISSING
    monitor: str | None = MISSING
    mode: str | None = MISSING


@dataclass
class SupervisedConfig:
    method: str = MISSING


@dataclass
class SelfSupervisedConfig(SupervisedConfig):
    intensity_map: str | None = MISSING


@dataclass
class Neighbor2NeighborConfig(SelfSupervisedConfig):
    regulariser_weight: float = MISSING


@dataclass
class N2V2Config(SelfSupervisedConfig):
    mask_grid: int = MISSING
    blind_radius: int = MISSING
    window_radius: int | None = MISSING
    fusion_window: int = MISSING
    sigma: float | str = MISSING


@dataclass
class R2RConfig(SelfSupervisedConfig):
    alpha: float = MISSING
    sigma: float | str = MISSING


# --- Lightning Trainer (conf/trainer); other Trainer arguments: +trainer.<name>=<value> ------------------
@dataclass
class TrainerConfig:
    _target_: str = MISSING
    default_root_dir: PathText | None = MISSING
    accelerator: str = MISSING
    devices: int | str = MISSING
    precision: int | str = MISSING
    max_epochs: int | None = MISSING
    limit_train_batches: int | float | None = MISSING
    limit_val_batches: int | float | None = MISSING
    limit_test_batches: int | float | None = MISSING
    log_every_n_steps: int = MISSING
    check_val_every_n_epoch: int | None = MISSING
    num_sanity_val_steps: int = MISSING
    deterministic: bool | str = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING
    max_steps: int = -1
    val_check_interval: int | float | None = None
    overfit_batches: int | float = 0.0
    strategy: str = "auto"
    num_nodes: int = 1
    sync_batchnorm: bool = False


# --- the commands' own settings (conf/<command>.yaml) --------------------------------------------------
@dataclass
class PreflightConfig:
    decode: bool = MISSING
    workers: int | None = MISSING
    cache_file: PathText = MISSING


@dataclass
class TrainConfig:
    task_name: str = MISSING
    name: str = MISSING
    resume: str = MISSING
    seed: int = MISSING
    test: bool = MISSING
    ckpt_path: PathText | None = MISSING
    init_weights: PathText | None = MISSING
    stages: dict[str, Any] | None = MISSING
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    optimized_metric: str = MISSING
    data: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    training: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    callbacks: Any = None
    logger: Any = None
    paths: Any = None
    fitted_noise: Any = None  # experiment=pretrained: the noise model its stages share


@dataclass
class CommandConfig:
    task_name: str = MISSING
    paths: Any = None


@dataclass
class ModelChoice(CommandConfig):
    ckpt: PathText = MISSING
    run: PathText | None = MISSING


@dataclass
class DenoiseConfig(ModelChoice):
    input: PathText = MISSING
    output: PathText = MISSING
    memory_gb: float = MISSING
    tile: int | str = MISSING
    overlap: int = MISSING
    tile_margin: int | str = MISSING
    batch_size: int | str = MISSING
    device: str = MISSING
    backend: str = MISSING
    precision: int | str = MISSING
    channels_last: bool = MISSING
    tta: bool | int = MISSING
    recursive: bool = MISSING
    overwrite: bool = MISSING
    jpeg_as_png: bool = MISSING
    progress: bool = MISSING
    bit_depth: int | str = MISSING


@dataclass
class EvaluationConfig(ModelChoice):
    data: Any = None
    split: str = MISSING
    data_root: PathText | None = MISSING
    device: str = MISSING
    precision: int | str = MISSING
    intensity: str = MISSING
    save_intensity: bool = MISSING
    fusion: int | bool | str = MISSING
    tta: bool | int = MISSING
    eval_margin: int | None = MISSING
    view: int | None = MISSING
    write_images: bool = MISSING
    bit_depth: int | str = MISSING
    results_dir: PathText | None = MISSING


@dataclass
class ReportConfig(ModelChoice):
    sweep: PathText | None = MISSING
    sweep_images: bool = MISSING
    split: str = MISSING
    data_root: PathText | None = MISSING
    inputs: str = MISSING
    doses: list[float] = MISSING
    reference_doses: list[float] | None = MISSING
    noise: Any = None  # a conf/data/noise option: data/noise@noise=<name>
    seed: int | None = MISSING
    baselines: list[str] = MISSING
    max_images: int | None = MISSING
    image_quality: Any = MISSING
    affine_fit_split: str = MISSING
    tta: bool | int | None = MISSING
    device: str = MISSING
    precision: int | str = MISSING
    html: bool = MISSING
    progress: bool = MISSING
    bit_depth: int | str = MISSING
    out_dir: PathText | None = MISSING


@dataclass
class InputRangeConfig:
    images: int = MISSING
    trained_on: str = MISSING
    otherwise: str | None = MISSING


@dataclass
class ExportConfig(ModelChoice):
    output: PathText = MISSING
    half: bool = MISSING
    overwrite: bool = MISSING
    input_range: InputRangeConfig = field(default_factory=InputRangeConfig)


@dataclass
class FitNoiseConfig(CommandConfig):
    data_root: PathText = MISSING
    split: str = MISSING
    max_pairs: int = MISSING
    output: PathText | None = MISSING
    overwrite: bool = MISSING


SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "denoise": DenoiseConfig,
    "test": EvaluationConfig,
    "report": ReportConfig,
    "export": ExportConfig,
    "fit_noise": FitNoiseConfig,
    "data/loader": LoaderConfig,
    "data/pairs": PairsConfig,
    "data/sample": SampleConfig,
    "data/simulated": SimulatedConfig,
    "data/noisy": NoisyConfig,
    "loss/plain": LossConfig,
    "loss/charbonnier": CharbonnierConfig,
    "loss/ssim_l1": SsimL1Config,
    "training/supervised": SupervisedConfig,
    "training/neighbor2neighbor": Neighbor2NeighborConfig,
    "training/n2v2": N2V2Config,
    "training/r2r": R2RConfig,
}


def register_schemas() -> None:
    """Store every class under ``schema/<name>`` in Hydra's ConfigStore (what the yaml files name)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        group, _, option = f"schema/{name}".rpartition("/")
        store.store(group=group, name=option, node=node)
