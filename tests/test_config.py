import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, compose_config
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict

from lightning_modules.commands import schemas

REPO = Path(__file__).resolve().parents[1]
GROUPS = [
    "data",
    "data/noise",
    "model",
    "loss",
    "optim",
    "training",
    "trainer",
    "callbacks",
    "logger",
    "paths",
    "experiment",
    "debug",
    "hparams_search",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("override", [f"{group}={option}" for group in GROUPS for option in _options(group)])
def test_every_option_composes_and_resolves(override):
    cfg = compose_config("train", [override], hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # Hydra's own node holds job-time values (job.num); the job config must resolve
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert (resolved["trainer"]["max_epochs"] or 0) >= 1 or resolved["trainer"]["max_steps"] >= 1
    assert resolved["loss"]["name"] in {"l1", "mse", "charbonnier", "ssim_l1"}


def _flat(node, prefix: str = "") -> dict:
    """``{"a.b": value}`` for every leaf of a composed config (unresolved)."""
    if not isinstance(node, dict):
        node = OmegaConf.to_container(node, resolve=False) if not prefix else node
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


RECIPE_CHANGES = {
    "residual": {"model.residual"},
    "affine_skip": {"model.residual"},
    "fitted_noise": "data.train_noise",
    "charbonnier": "loss.",
    "ssim_l1": "loss.",
    "ema": "callbacks.ema",
    "full_images": {"data.patch_size", "data.batch_size"},
    "lr_2e-3": {"optim.lr"},
    "no_min_foreground": {"data.min_foreground"},
    "progressive": {"data.patch_schedule"},
    "progressive_192": {"data.patch_schedule"},
}


@pytest.mark.parametrize("recipe", sorted(RECIPE_CHANGES))
def test_each_recipe_of_the_study_changes_one_thing_at_the_same_budget(recipe):
    study = ["experiment=recipe_study", "data.root=somewhere"]
    base, changed = _flat(compose_config("train", study)), _flat(compose_config("train", [*study, f"recipe={recipe}"]))
    differing = {k for k in base.keys() | changed.keys() if base.get(k) != changed.get(k)}
    expected = RECIPE_CHANGES[recipe]
    if isinstance(expected, str):  # a whole node swapped: every differing key lies under it
        assert differing and all(k.startswith(expected) for k in differing), differing
    else:
        assert differing == expected, differing
    assert changed["trainer.max_steps"] == base["trainer.max_steps"] == 600 and changed["seed"] == base["seed"]


def test_pretrained_stage_is_the_fifth_cycle_command_line():
    """experiment=pretrained_stage composes exactly what the model card's stage commands spelled out."""
    common = ["data.root=somewhere", "name=stage"]
    stage = _flat(compose_config("train", ["experiment=pretrained_stage", *common]))
    spelled = [
        "experiment=pretrained_cycle",
        "data/noise@data.train_noise=cxr_pairs",
        "init_weights=pretrained",
        "model.eval_margin=64",
        "optim.lr=3e-4",
        "trainer.max_epochs=160",
        "callbacks=ema",
    ]
    assert stage == _flat(compose_config("train", [*spelled, *common]))
    assert stage["data.train_noise.jpeg_quality"] == 95 and stage["callbacks.ema.decay"] == 0.999


def test_slurm_and_parallel_launchers_and_optuna_search_compose():
    cfg = compose_config("train", ["hydra/launcher=slurm", "hydra.launcher.tasks_per_node=4"], hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.timeout_min) == (4, 720)
    cfg = compose_config("train", ["hydra/launcher=parallel", "hydra.launcher.n_jobs=5"], hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("joblib_launcher.JoblibLauncher")
    assert (cfg.hydra.launcher.n_jobs, cfg.hydra.launcher.backend) == (5, None)  # None: joblib's loky
    cfg = compose_config("train", ["hparams_search=optuna"], hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "maximize"
    assert cfg.hydra.sweeper.max_failure_rate == 1.0 and cfg.optimized_metric == "val/psnr_best"
    assert set(cfg.hydra.sweeper.params) == {"optim.lr", "optim.weight_decay", "loss"}


def test_long_job_folder_names_are_cut_with_a_hash():
    from lightning_modules.runs.hydra import MAX_JOB_DIRNAME, job_dirname

    assert job_dirname(3, "loss=l1,optim.lr=0.001") == "3_loss=l1,optim.lr=0.001"
    assert job_dirname(0, "") == "0"
    long_a, long_b = "x=" + "a" * 300 + ",y=1", "x=" + "a" * 300 + ",y=2"
    cut_a, cut_b = job_dirname(7, long_a), job_dirname(7, long_b)
    assert len(cut_a.encode()) <= MAX_JOB_DIRNAME and cut_a.startswith("7_x=aaa")
    assert cut_a != cut_b  # same beginning, different overrides: different folders


def test_each_group_has_options():
    for group in GROUPS:
        assert _options(group), group


def test_test_config_composes():
    cfg = compose_config("test", ["ckpt=last", "run=somewhere"])
    assert cfg.ckpt == "last" and cfg.run == "somewhere" and cfg.split == "test"


def test_seed_reproduction_is_the_original_recipe():
    cfg = compose_config("train", ["experiment=seed_reproduction"])
    assert cfg.loss.name == "l1" and cfg.optim.name == "adam" and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.data.batch_size == 4 and cfg.trainer.max_epochs == 20
    assert cfg.data._target_.endswith("PairedDataModule")


def test_bad_overrides_fail_with_hydra_messages():
    with pytest.raises(MissingConfigException, match="loss/huber"):
        compose_config("train", ["loss=huber"])
    with pytest.raises(ConfigCompositionException, match="optim.lrr"):
        compose_config("train", ["optim.lrr=1"])


@pytest.mark.e2e
def test_cli_prints_config_and_rejects_unknown_key():
    ok = subprocess.run(
        [sys.executable, "scripts/train.py", "--cfg", "job", "loss=mse", "optim.lr=3e-4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    printed = OmegaConf.create(ok.stdout)
    assert printed.loss.name == "mse" and printed.optim.lr == pytest.approx(3e-4)
    bad = subprocess.run(
        [sys.executable, "scripts/train.py", "--cfg", "job", "optim.lrr=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    assert "Could not override 'optim.lrr'" in bad.stderr


def test_default_is_the_physical_model_at_low_dose_with_group_norm():
    cfg = compose_config("train")
    assert cfg.data.noise._target_ == "datamodules.noise.PhysicalNoiseModel"
    assert cfg.data.dose == 0.05 and cfg.model.norm == "group" and cfg.model.residual


TYPED_GROUPS = {
    "data": schemas.LoaderConfig,
    "model": schemas.ModelConfig,
    "loss": schemas.LossConfig,
    "optim": schemas.OptimConfig,
    "training": schemas.SupervisedConfig,
    "trainer": schemas.TrainerConfig,
}
COMMANDS_AND_THEIR_REQUIRED_SETTINGS = {
    "train": [],
    "denoise": ["input", "output"],
    "test": [],
    "report": [],
    "export": ["output"],
    "fit_noise": ["data_root"],
}


def _unset(cfg: DictConfig) -> list[str]:
    """The settings left at ``???`` (nothing resolved)."""
    return [key for key, value in _flat(cfg).items() if value == "???"]


@pytest.mark.parametrize("group", ["data", "loss", "optim", "training", "trainer", "experiment", "recipe", "debug"])
def test_every_option_is_typed_by_its_schema_and_sets_every_setting(group):
    """conf/ and lightning_modules/commands/schemas.py cannot disagree: each option composes against its
    class (Hydra rejects a setting the class lacks and a value of the wrong type), and the yaml gives
    every declared setting a value (the classes hold types, the yaml the defaults)."""
    for option in _options(group):
        overrides = [f"{group}={option}", "data.root=x"]
        cfg = compose_config("train", ["experiment=recipe_study", *overrides] if group == "recipe" else overrides)
        assert OmegaConf.get_type(cfg) is schemas.TrainConfig
        for name, schema in TYPED_GROUPS.items():
            assert issubclass(OmegaConf.get_type(cfg[name]), schema), f"{group}={option}: {name}"
        assert _unset(cfg) == [], f"{group}={option}"


@pytest.mark.parametrize("command", sorted(COMMANDS_AND_THEIR_REQUIRED_SETTINGS))
def test_each_command_config_is_typed_and_asks_only_for_what_the_user_must_say(command):
    cfg = compose_config(command)
    assert OmegaConf.get_type(cfg) is schemas.SCHEMAS[command]
    assert _unset(cfg) == COMMANDS_AND_THEIR_REQUIRED_SETTINGS[command]


def test_a_wrong_list_item_is_named():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["optim.betas=[0.9,fast]"])
    assert "full_key: optim.betas[1]" in str(err.value.__cause__)
