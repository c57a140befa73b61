"""The package layout's promises: Lightning stays inside ``training/`` (and the ``train`` command and the
LightningDataModule that use it), saved configs of older layouts load."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import datamodules
import lightning_modules
from lightning_modules.runs.folders import LEGACY_TARGETS, PRETRAINED_DIR, load_run_config
from lightning_modules.runs.records import config_fingerprint, config_fingerprints

REPO = Path(__file__).resolve().parents[1]
LIGHTNING_FREE_EXCEPTIONS = {"datamodules.datamodule", "datamodules.throughput", "lightning_modules.commands.train"}


def _modules(package) -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".") if not info.ispkg
    )


def _first_importer(modules: list[str], heavy: str) -> str | None:
    """Import ``modules`` in order in a fresh interpreter; the first one after which ``heavy`` is loaded."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
        "    if sys.argv[1] in sys.modules:\n"
        "        print(name)\n"
        "        break\n"
        "else:\n"
        "    print('-')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, heavy, *modules], capture_output=True, text=True, cwd=REPO, check=True
    )
    last = out.stdout.strip().splitlines()[-1]
    return None if last == "-" else last


@pytest.mark.e2e  # fresh interpreters importing the whole package: half a minute
def test_only_training_imports_lightning():
    modules = [
        m
        for m in _modules(lightning_modules) + _modules(datamodules)
        if not m.startswith("lightning_modules.training.") and m not in LIGHTNING_FREE_EXCEPTIONS
    ]
    assert len(modules) > 30
    assert _first_importer(modules, "lightning") is None, (
        "a module outside lightning_modules/training/ imports Lightning"
    )


@pytest.mark.e2e
def test_denoise_starts_without_smp_and_the_check_can_see_an_import():
    assert _first_importer(["lightning_modules.commands.denoise"], "segmentation_models_pytorch") is None
    modules = ["lightning_modules.commands.denoise", "lightning_modules.commands.train"]
    assert _first_importer(modules, "lightning") == "lightning_modules.commands.train"


def test_old_style_run_config_loads_with_current_classes(tmp_path):
    old = {
        "data": {
            "_target_": "datamodules.datamodule.SimulatedDataModule",
            "root": None,
            "noise": {"_target_": "datamodules.dose.PhysicalDoseModel", "I0": 2000.0},
            "dose": 0.25,
        },
        "callbacks": {"best_weights": {"_target_": "lightning_modules.callbacks.BestWeightsExport"}},
        "other": [{"_target_": "datamodules.degradation.AffineGaussianDegradation", "gain": 0.5}],
    }
    (tmp_path / "run_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(old)))
    cfg = load_run_config(tmp_path)
    assert cfg.data.noise._target_ == "datamodules.noise.PhysicalNoiseModel"
    assert cfg.callbacks.best_weights._target_ == "lightning_modules.training.callbacks.BestWeightsExport"
    assert instantiate(cfg.other[0]).gain == 0.5
    datamodule = instantiate(cfg.data)  # the sample data, simulated through the renamed class
    assert type(datamodule.noise).__name__ == "PhysicalNoiseModel"
    for new in LEGACY_TARGETS.values():  # every new name exists
        module, name = new.rsplit(".", 1)
        assert hasattr(__import__(module, fromlist=[name]), name), new


def test_shipped_config_builds_its_data(tmp_path):
    cfg = load_run_config(PRETRAINED_DIR)
    cfg.data.root = str(tmp_path / "missing")  # the shipped config names the shared data, absent here
    with pytest.raises(Exception, match="missing"):
        instantiate(cfg.data).setup("fit")
    assert "datamodules.datamodule" in cfg.data._target_


def test_resume_recognises_a_run_fingerprinted_under_old_class_names():
    new = OmegaConf.create({"name": "x", "data": {"noise": {"_target_": "datamodules.noise.PhysicalNoiseModel"}}})
    old = OmegaConf.create({"name": "x", "data": {"noise": {"_target_": "datamodules.dose.PhysicalDoseModel"}}})
    assert config_fingerprint(new) != config_fingerprint(old)
    assert config_fingerprint(old) in config_fingerprints(new)
