"""Progressive training patches (``data.patch_schedule``): phases parsed with the key named, the loader
switching patch and batch size at the right step, and a run that trains through the switch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_train_config

from datamodules.datamodule import SimulatedDataModule
from datamodules.patch_schedule import PatchPhase, check_step_budget, parse_patch_schedule, phase_at
from lightning_modules.commands.train import check_train_config, train

WHOLE_LATER = [{"start": 0.5, "patch_size": None, "batch_size": 4}]


def test_phases_parse_and_switch_at_the_step_fraction():
    phases = parse_patch_schedule(WHOLE_LATER, 128, 16)
    assert phases == [PatchPhase(0.0, 128, 16), PatchPhase(0.5, None, 4)]
    assert phase_at(phases, 0, 600) == phases[0] and phase_at(phases, 299, 600) == phases[0]
    assert phase_at(phases, 300, 600) == phases[1] and phase_at(phases, 599, 600) == phases[1]
    assert parse_patch_schedule(None, 64, 8) == [PatchPhase(0.0, 64, 8)]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            [{"start": 0.5, "patch_size": 100, "batch_size": 4}],
            r"patch_schedule\[0\]\.patch_size=100 must be a multiple of 32",
        ),
        ([{"start": 1.5, "patch_size": 64, "batch_size": 4}], r"patch_schedule\[0\]\.start=1\.5"),
        (
            [{"start": 0.6, "patch_size": 64, "batch_size": 4}, {"start": 0.3, "patch_size": 96, "batch_size": 2}],
            r"patch_schedule\[1\]\.start=0\.3",
        ),
        ([{"start": 0.5, "patch_size": 64, "batch_size": 0}], r"patch_schedule\[0\]\.batch_size=0"),
        ([{"start": 0.5, "patch_size": 64}], r"patch_schedule\[0\]=.*exactly start, patch_size and batch_size"),
        ("0.5", r"data\.patch_schedule='0\.5': use a list"),
    ],
)
def test_bad_schedules_name_the_key(schedule, message):
    with pytest.raises(ValueError, match=message):
        parse_patch_schedule(schedule, 128, 16)


def test_a_schedule_needs_a_step_budget(tmp_path):
    assert check_step_budget(600, None) == 600 and check_step_budget(600, -1) == 600
    with pytest.raises(ValueError, match=r"trainer\.max_steps \(got -1\)"):
        check_step_budget(-1, None)
    schedule = "data.patch_schedule=[{start:0.5,patch_size:64,batch_size:2}]"
    with pytest.raises(ValueError, match=r"set trainer\.max_epochs=null \(got 2\)"):
        check_train_config(tiny_train_config(tmp_path / "run", [schedule, "trainer.max_steps=40"]))
    check_train_config(
        tiny_train_config(tmp_path / "run", [schedule, "trainer.max_steps=40", "trainer.max_epochs=null"])
    )


def test_the_loader_follows_the_phase_of_the_step():
    datamodule = SimulatedDataModule(
        batch_size=4, patch_size=32, num_workers=0, patch_schedule=[{"start": 0.5, "patch_size": 64, "batch_size": 2}]
    )
    datamodule.setup("fit")
    shapes = []
    for step in (0, 19, 20, 39):
        datamodule.trainer = SimpleNamespace(global_step=step, max_steps=40, max_epochs=-1)
        shapes.append(tuple(next(iter(datamodule.train_dataloader()))["low"].shape))
    assert shapes == [(4, 1, 32, 32), (4, 1, 32, 32), (2, 1, 64, 64), (2, 1, 64, 64)]
    datamodule.trainer = SimpleNamespace(global_step=0, max_steps=-1, max_epochs=3)
    with pytest.raises(ValueError, match="data.patch_schedule needs a budget in steps"):
        datamodule.train_dataloader()


def test_training_runs_through_the_switch(tmp_path):
    # 80 training images, batch 4: 20 steps in the first epoch, then 64² patches in batches of 2
    cfg = tiny_train_config(
        tmp_path / "run",
        [
            "data.patch_schedule=[{start:0.5,patch_size:64,batch_size:2}]",
            "trainer.max_epochs=null",
            "trainer.max_steps=30",
            "test=false",
        ],
    )
    train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 30 and last["epoch"] >= 1
