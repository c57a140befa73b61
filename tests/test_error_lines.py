"""The project's own errors print one line, ``error: <message>``; bugs and HYDRA_FULL_ERROR=1 keep tracebacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from hydra.errors import ConfigCompositionException, InstantiationException

from lightning_modules.commands.errors import is_project_check, one_line_errors
from lightning_modules.training.optim import check_optim_config

REPO = Path(__file__).resolve().parents[1]


def raised(call) -> BaseException:
    try:
        call()
    except Exception as err:  # noqa: BLE001
        return err
    raise AssertionError("nothing was raised")


def test_only_raise_statements_in_project_code_count_as_its_own_checks():
    own = raised(lambda: check_optim_config({"name": "adam", "lr": 0}))
    assert is_project_check(own)
    # the same function failing on an expression (float("abc")) is not a check with a message
    expression = raised(lambda: check_optim_config({"name": "adam", "lr": "abc"}))
    assert isinstance(expression, ValueError) and not is_project_check(expression)
    library = raised(lambda: np.zeros(3).reshape(2, 2))
    assert isinstance(library, ValueError) and not is_project_check(library)


def test_decorated_task_prints_one_line_and_exits_1(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    @one_line_errors
    def task(cfg):
        check_optim_config(cfg)

    with pytest.raises(SystemExit) as stop:
        task({"name": "adam", "lr": -1})
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: optim.lr must be > 0, got -1\n"
    # a constructor's check reaches the user through hydra.utils.instantiate's wrapper
    wrapped_cause = raised(lambda: check_optim_config({"name": "sgd"}))

    @one_line_errors
    def instantiating(cfg):
        raise InstantiationException("Error in call to target ...") from wrapped_cause

    with pytest.raises(SystemExit):
        instantiating(None)
    assert capsys.readouterr().err.startswith("error: optim.name='sgd' is unknown")
    # with HYDRA_FULL_ERROR=1 the error itself comes through (Hydra prints its traceback)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError, match="optim.lr must be > 0"):
        task({"name": "adam", "lr": -1})


@pytest.mark.parametrize(
    "config, override, key, words",
    [
        ("train", "optim.lr=abc", "optim.lr", "could not be converted to Float"),
        ("train", "data.batch_size=1.5", "data.batch_size", "could not be converted to Integer"),
        ("train", "data.augment=maybe", "data.augment", "is not a valid bool"),
        ("train", "model.decoder_channels=[256,a]", "model.decoder_channels[1]", "converted to Integer"),
        ("train", "trainer.max_epochs=ten", "trainer.max_epochs", "could not be converted to Integer"),
        ("train", "training.regulariser_weight=big", "training.regulariser_weight", "converted to Float"),
        ("denoise", "overlap=big", "overlap", "could not be converted to Integer"),
        ("denoise", "overwrite=maybe", "overwrite", "is not a valid bool"),
        ("test", "write_images=sometimes", "write_images", "is not a valid bool"),
        ("report", "max_images=all", "max_images", "could not be converted to Integer"),
        ("export", "input_range.images=many", "input_range.images", "could not be converted to Integer"),
        ("fit_noise", "max_pairs=lots", "max_pairs", "could not be converted to Integer"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_key(config, override, key, words):
    extra = ["training=neighbor2neighbor"] if "regulariser" in override else []
    with pytest.raises(ConfigCompositionException, match=re.escape(override)) as err:
        compose_config(config, [*extra, override])
    assert f"full_key: {key}\n" in str(err.value.__cause__) and words in str(err.value.__cause__)


def test_values_of_the_right_type_pass_and_a_numeric_folder_name_is_a_path():
    cfg = compose_config("denoise", ["input=x", "output=2024", "tile=512", "tta=8", "tile_margin=auto"])
    assert cfg.output == "2024" and cfg.tile == 512 and cfg.tta == 8 and cfg.tile_margin == "auto"
    training = compose_config(
        "train", ["trainer.max_epochs=null", "trainer.limit_train_batches=0.5", "data.dose=[0.1,1]"]
    )
    assert training.trainer.max_epochs is None and training.trainer.limit_train_batches == 0.5
    assert list(training.data.dose) == [0.1, 1]


@pytest.mark.e2e
def test_scripts_print_one_line_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "scripts/train.py", "optim.lr=-1", f"paths.log_dir={tmp_path}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: optim.lr must be > 0, got -1.0"
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**env, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1
    assert "Traceback" in full.stderr and "ValueError: optim.lr must be > 0, got -1.0" in full.stderr
    # a value of the wrong type stops Hydra before the run starts: its message names the key, no traceback
    typed = subprocess.run(
        [*command[:2], "optim.lr=abc", command[3]], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert typed.returncode == 1 and "Traceback" not in typed.stderr
    assert (
        "full_key: optim.lr" in typed.stderr and "'abc' of type 'str' could not be converted to Float" in typed.stderr
    )
