"""The ``training`` config group: which methods exist, checking a node before any work, and which
validation metric picks the best checkpoint of each method and kind of data."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from lightning_modules.selfsup.fusion import check_fusion_window
from lightning_modules.selfsup.noise_level import check_sigma

# What every run did before the group existed (conf/training/supervised.yaml); left out of the
# config fingerprint, so those runs still resume (lightning_modules/runs/records.py).
SUPERVISED = {"method": "supervised"}
SELF_SUPERVISED = ("neighbor2neighbor", "n2v2", "r2r")
METHODS = ("supervised", *SELF_SUPERVISED)
INTENSITY_MAPS = ("val", "none")
# The monitor the default callbacks ship with; self-supervised runs replace it where it appears.
SUPERVISED_MONITOR = "val/psnr"


def method_of(cfg: DictConfig) -> str:
    """``training.method`` of a composed train config (``supervised`` when there is no training node)."""
    return str(OmegaConf.select(cfg, "training.method", default="supervised"))


def _number(training: dict[str, Any], key: str, minimum: float, integer: bool = False, strict: bool = False) -> None:
    value = training.get(key)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"training.{key} must be {'an integer' if integer else 'a number'} {bound}, got {value!r}")


def check_training_config(training: dict[str, Any] | None) -> None:
    """Fail fast, naming the key, on a ``training`` node that would only break later."""
    if not training:
        return
    method = training.get("method")
    if method not in METHODS:
        raise ValueError(f"training.method={method!r} is unknown; choose one of {list(METHODS)} (training=<method>)")
    if method == "supervised":
        return
    if training.get("intensity_map", "val") not in INTENSITY_MAPS:
        raise ValueError(f"training.intensity_map={training.get('intensity_map')!r}: use val or none")
    if method == "neighbor2neighbor":
        _number(training, "regulariser_weight", 0.0)
    elif method == "n2v2":
        _number(training, "mask_grid", 2, integer=True)
        _number(training, "blind_radius", 0, integer=True)
        radius, grid = training["blind_radius"], training["mask_grid"]
        if grid <= 2 * radius + 1:
            raise ValueError(
                f"training.mask_grid={grid} must exceed the blind hole's side {2 * radius + 1} "
                f"(training.blind_radius={radius}), or every pixel would be hidden"
            )
        if training.get("window_radius") is not None:
            _number(training, "window_radius", radius + 1, integer=True)
        if check_fusion_window(training.get("fusion_window", 0)):
            check_sigma(training.get("sigma"))
    elif method == "r2r":
        _number(training, "alpha", 0.0, strict=True)
        check_sigma(training.get("sigma"))


def fusion_window(training: dict[str, Any]) -> int:
    """The window N2V2 fuses its output with the input over; 0 for no fusion (and for every other method)."""
    return int(training.get("fusion_window", 0)) if training.get("method") == "n2v2" else 0


def needs_noise_level(training: dict[str, Any]) -> bool:
    """Whether ``training`` needs a resolved noise level: R2R recorrupts with it, N2V2 fuses with it."""
    return training.get("method") == "r2r" or fusion_window(training) > 0


def selection_metric(method: str, has_targets: bool) -> tuple[str, str]:
    """``(monitor, mode)`` that picks the best checkpoint.

    Supervised: validation PSNR. Self-supervised with clean validation images: PSNR after the
    intensity map fitted on those images (``val/psnr_mapped``). Without them: the self-supervised
    loss on the validation images (``val/ssl_loss``, fixed random views each epoch).
    """
    if method == "supervised":
        return SUPERVISED_MONITOR, "max"
    return ("val/psnr_mapped", "max") if has_targets else ("val/ssl_loss", "min")


def follow_selection_metric(cfg: DictConfig, has_targets: bool) -> tuple[str, str]:
    """Point every callback that monitors ``val/psnr`` (best checkpoint, best weights, early
    stopping) and the plateau scheduler at :func:`selection_metric`; supervised configs are left
    exactly as they are."""
    monitor, mode = selection_metric(method_of(cfg), has_targets)
    if monitor == SUPERVISED_MONITOR or not cfg.get("callbacks"):
        return monitor, mode
    with open_dict(cfg):
        for node in cfg.callbacks.values():
            if isinstance(node, DictConfig) and node.get("monitor") == SUPERVISED_MONITOR:
                node.monitor = monitor
                node.mode = mode
        if cfg.get("optimized_metric") == "val/psnr_best":
            cfg.optimized_metric = f"{monitor}_best"
        if OmegaConf.select(cfg, "optim.scheduler") == "plateau" and cfg.optim.get("monitor") is None:
            cfg.optim.monitor, cfg.optim.mode = monitor, mode  # it steps on the selection metric too
    return monitor, mode
