"""The type of every value a user can type on the command line, checked with the key named.

Hydra passes ``optim.lr=abc`` or ``data.augment=yes`` through as text; without this check the run
would fail later with ``could not convert string to float: 'abc'`` and no key. Keys missing from a
config (a group option without that setting) are skipped; the range of each value is checked where it
is used.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

INT, FLOAT, BOOL, TEXT, INTS, FLOATS, NULL, PATH = "int", "float", "bool", "text", "ints", "floats", "null", "path"
KIND_WORDS = {
    INT: "a whole number",
    FLOAT: "a number",
    BOOL: "true or false",
    TEXT: "text",
    INTS: "a list of whole numbers",
    FLOATS: "a list of numbers",
    NULL: "null",
    PATH: "a path",
}
_MISSING = object()

TRAIN_KEYS: dict[str, tuple[str, ...]] = {
    "seed": (INT,),
    "test": (BOOL,),
    "resume": (TEXT,),
    "name": (TEXT,),
    "init_weights": (PATH, NULL),
    "ckpt_path": (PATH, NULL),
    "preflight.decode": (BOOL,),
    "preflight.workers": (INT, NULL),
    "data.root": (PATH, NULL),
    "data.batch_size": (INT,),
    "data.patch_size": (INT, NULL),
    "data.train_subset": (INT, NULL),
    "data.patches_per_image": (INT,),
    "data.augment": (BOOL,),
    "data.num_workers": (INT,),
    "data.cache": (BOOL,),
    "data.eval_batch_size": (INT,),
    "data.min_foreground": (FLOAT,),
    "data.val_fraction": (FLOAT,),
    "data.test_fraction": (FLOAT,),
    "data.seed": (INT,),
    "data.bit_depth": (INT, TEXT),  # auto or 1..16 (checked where images are read)
    "data.dose": (FLOAT, FLOATS),
    "data.real_fraction": (FLOAT,),
    "model.encoder_name": (TEXT,),
    "model.encoder_weights": (TEXT, NULL),
    "model.residual": (BOOL, TEXT),  # false, true, affine or lowpass (checked where the network is built)
    "model.decoder_attention_type": (TEXT, NULL),
    "model.decoder_channels": (INTS,),
    "model.norm": (TEXT,),
    "model.eval_margin": (INT,),
    "model.channels_last": (BOOL,),
    "loss.name": (TEXT,),
    "loss.eps": (FLOAT,),
    "loss.alpha": (FLOAT,),
    "optim.name": (TEXT,),
    "optim.lr": (FLOAT,),
    "optim.weight_decay": (FLOAT,),
    "optim.scheduler": (TEXT,),
    "optim.warmup_steps": (INT,),
    "optim.min_lr_ratio": (FLOAT,),
    "optim.betas": (FLOATS,),
    "optim.step_epochs": (INT,),
    "optim.gamma": (FLOAT,),
    "optim.patience": (INT,),
    "trainer.max_epochs": (INT, NULL),
    "trainer.max_steps": (INT,),
    "trainer.check_val_every_n_epoch": (INT, NULL),
    "trainer.log_every_n_steps": (INT,),
    "trainer.num_sanity_val_steps": (INT,),
    "trainer.limit_train_batches": (INT, FLOAT, NULL),
    "trainer.limit_val_batches": (INT, FLOAT, NULL),
    "trainer.limit_test_batches": (INT, FLOAT, NULL),
    "trainer.deterministic": (BOOL, TEXT),
    "trainer.enable_progress_bar": (BOOL,),
    "training.method": (TEXT,),
    "training.regulariser_weight": (FLOAT,),
    "training.mask_grid": (INT,),
    "training.blind_radius": (INT,),
    "training.window_radius": (INT, NULL),
    "training.fusion_window": (INT,),
    "training.alpha": (FLOAT,),
    "training.sigma": (FLOAT, TEXT),
    "training.intensity_map": (TEXT, NULL),
}

_MODEL_CHOICE = {"ckpt": (PATH,), "run": (PATH, NULL), "device": (TEXT,)}

DENOISE_KEYS: dict[str, tuple[str, ...]] = {
    **_MODEL_CHOICE,
    "input": (PATH,),
    "output": (PATH,),
    "memory_gb": (FLOAT,),
    "tile": (INT, TEXT),  # auto or pixels (auto_or_int names the key for other text)
    "overlap": (INT,),
    "tile_margin": (INT, TEXT),
    "batch_size": (INT, TEXT),
    "backend": (TEXT,),
    "precision": (TEXT, INT),
    "channels_last": (BOOL,),
    "tta": (BOOL, INT),
    "overwrite": (BOOL,),
    "recursive": (BOOL,),
    "jpeg_as_png": (BOOL,),
    "progress": (BOOL,),
}

TEST_KEYS: dict[str, tuple[str, ...]] = {
    **_MODEL_CHOICE,
    "split": (TEXT,),
    "data_root": (PATH, NULL),
    "precision": (TEXT, INT),
    "tta": (BOOL, INT),
    "write_images": (BOOL,),
    "results_dir": (PATH, NULL),
    "view": (INT, NULL),
    "eval_margin": (INT, NULL),
    "intensity": (TEXT,),
    "save_intensity": (BOOL,),
    "fusion": (TEXT, INT, BOOL),
}

REPORT_KEYS: dict[str, tuple[str, ...]] = {
    **_MODEL_CHOICE,
    "sweep": (PATH, NULL),
    "sweep_images": (BOOL,),
    "split": (TEXT,),
    "data_root": (PATH, NULL),
    "inputs": (TEXT,),
    "seed": (INT, NULL),
    "max_images": (INT, NULL),
    "affine_fit_split": (TEXT,),
    "tta": (BOOL, INT, NULL),
    "precision": (TEXT, INT),
    "html": (BOOL,),
    "progress": (BOOL,),
    "out_dir": (PATH, NULL),
}

EXPORT_KEYS: dict[str, tuple[str, ...]] = {
    **_MODEL_CHOICE,  # export.py has no device key; absent keys are not checked
    "output": (PATH,),
    "half": (BOOL,),
    "overwrite": (BOOL,),
    "input_range.images": (INT,),
    "input_range.trained_on": (TEXT,),
    "input_range.otherwise": (TEXT, NULL),
}

FIT_NOISE_KEYS: dict[str, tuple[str, ...]] = {
    "data_root": (PATH,),
    "split": (TEXT,),
    "max_pairs": (INT,),
    "output": (PATH, NULL),
    "overwrite": (BOOL,),
}


def _is(value: Any, kind: str) -> bool:
    if kind == NULL:
        return value is None
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == PATH:  # a folder may be called 2024: Hydra hands that over as a number
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if kind in (INTS, FLOATS):
        item = INT if kind == INTS else FLOAT
        return isinstance(value, (list, tuple, ListConfig)) and all(_is(v, item) for v in value)
    raise ValueError(f"unknown kind {kind!r}")


def check_types(cfg: DictConfig, keys: dict[str, tuple[str, ...]]) -> None:
    """Raise ``ValueError`` naming the first key of ``keys`` whose value in ``cfg`` has the wrong type.

    >>> from omegaconf import OmegaConf
    >>> check_types(OmegaConf.create({"optim": {"lr": "abc"}}), {"optim.lr": (FLOAT,)})
    Traceback (most recent call last):
    ...
    ValueError: optim.lr='abc' must be a number
    """
    for key, kinds in keys.items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)  # absent or ??? -> _MISSING
        if value is _MISSING or any(_is(value, kind) for kind in kinds):
            continue
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value)
        words = " or ".join(KIND_WORDS[kind] for kind in kinds)
        raise ValueError(f"{key}={value!r} must be {words}")
