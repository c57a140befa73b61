"""The project's own errors print one line, ``error: <message>``; bugs and HYDRA_FULL_ERROR=1 keep tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, tiny_train_config
from hydra.errors import InstantiationException

from lightning_modules.commands.errors import is_project_check, one_line_errors
from lightning_modules.runs.schema import DENOISE_KEYS, REPORT_KEYS, TEST_KEYS, check_types
from lightning_modules.training.optim import check_optim_config
from lightning_modules.training.train import train

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
    "override, message",
    [
        ("optim.lr=abc", "optim.lr='abc' must be a number"),
        ("data.batch_size=1.5", "data.batch_size=1.5 must be a whole number"),
        ("data.augment=yes", "data.augment='yes' must be true or false"),
        ("model.decoder_channels=[256,a]", r"model.decoder_channels=\[256, 'a'\] must be a list of whole numbers"),
        ("trainer.max_epochs=ten", "trainer.max_epochs='ten' must be a whole number or null"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_key(tmp_path, paired_root, override, message):
    cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={paired_root}", override])
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "config, keys, override, message",
    [
        ("denoise", DENOISE_KEYS, "overlap=big", "overlap='big' must be a whole number"),
        ("denoise", DENOISE_KEYS, "overwrite=maybe", "overwrite='maybe' must be true or false"),
        ("denoise", DENOISE_KEYS, "output=2024", None),  # a folder named 2024 arrives as a number
        ("test", TEST_KEYS, "write_images=1", "write_images=1 must be true or false"),
        ("report", REPORT_KEYS, "max_images=all", "max_images='all' must be a whole number or null"),
    ],
)
def test_script_values_are_typed(config, keys, override, message):
    cfg = compose_config(config, ["input=x", "output=y", override] if config == "denoise" else [override])
    if message is None:
        check_types(cfg, keys)
    else:
        with pytest.raises(ValueError, match=message):
            check_types(cfg, keys)


@pytest.mark.e2e
def test_scripts_print_one_line_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "scripts/train.py", "optim.lr=abc", f"paths.log_dir={tmp_path}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: optim.lr='abc' must be a number"
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**env, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1
    assert "Traceback" in full.stderr and "ValueError: optim.lr='abc' must be a number" in full.stderr
