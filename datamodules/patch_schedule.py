"""Progressive training patches: the patch and batch size change at set fractions of the step budget.

``data.patch_schedule`` lists the phases after the first (which uses ``data.patch_size`` and
``data.batch_size``), e.g. small patches for the first half of the steps, then whole images::

    data:
      patch_size: 128
      batch_size: 16
      patch_schedule:
        - {start: 0.5, patch_size: null, batch_size: 4}  # 256² images: the same pixels per step

A phase starts with the first epoch that begins at or after ``start × trainer.max_steps`` steps (the
training loader is rebuilt at every epoch). The budget has to be in steps: an epoch's length changes
with the batch size, so a budget in epochs would change the number of steps, and the learning-rate
schedule with it, once the schedule moves on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KEY = "data.patch_schedule"


@dataclass(frozen=True)
class PatchPhase:
    """From ``start`` (a fraction of the step budget) on: crops of ``patch_size`` (``None``: whole images)."""

    start: float
    patch_size: int | None
    batch_size: int


def _whole(value: Any, key: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a whole number >= 1" + (" or null (whole images)" if allow_none else "")
        raise ValueError(f"{key}={value!r}: use {allowed}")
    return value


def parse_patch_schedule(
    schedule: Sequence[Any] | None, patch_size: int | None, batch_size: int, multiple: int = 32
) -> list[PatchPhase]:
    """Every phase, the first (``start=0``: ``patch_size``, ``batch_size``) included; errors name the key.

    Example:
        >>> [p.patch_size for p in parse_patch_schedule([{"start": 0.5, "patch_size": None, "batch_size": 4}], 128, 16)]
        [128, None]
    """
    phases = [PatchPhase(0.0, patch_size, batch_size)]
    if schedule is None:
        return phases
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence):
        raise ValueError(f"{KEY}={schedule!r}: use a list of {{start, patch_size, batch_size}} (or null)")
    for index, phase in enumerate(schedule):
        key = f"{KEY}[{index}]"
        if not hasattr(phase, "keys") or set(phase.keys()) != {"start", "patch_size", "batch_size"}:
            raise ValueError(f"{key}={phase!r}: give exactly start, patch_size and batch_size")
        start = phase["start"]
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not phases[-1].start < start < 1:
            raise ValueError(
                f"{key}.start={start!r}: use a fraction of trainer.max_steps in (0, 1), after the previous phase's"
            )
        size = _whole(phase["patch_size"], f"{key}.patch_size", allow_none=True)
        if size is not None and size % multiple:
            raise ValueError(f"{key}.patch_size={size} must be a multiple of {multiple} (the network's downsampling)")
        phases.append(PatchPhase(float(start), size, _whole(phase["batch_size"], f"{key}.batch_size")))
    return phases


def phase_at(phases: Sequence[PatchPhase], step: int, max_steps: int) -> PatchPhase:
    """The phase that an epoch starting at ``step`` of ``max_steps`` trains in."""
    current = phases[0]
    for phase in phases[1:]:
        if step >= phase.start * max_steps:
            current = phase
    return current


def check_step_budget(max_steps: Any, max_epochs: Any) -> int:
    """``trainer.max_steps`` as the budget a schedule needs (and no epoch limit); the error says why."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(
            f"{KEY} needs a budget in steps: set trainer.max_steps (got {max_steps!r}) and trainer.max_epochs=null; "
            "an epoch's length changes with the batch size"
        )
    if max_epochs not in (None, -1):
        raise ValueError(
            f"{KEY} counts in steps: set trainer.max_epochs=null (got {max_epochs!r}) and the budget in "
            "trainer.max_steps; an epoch's length changes with the batch size"
        )
    return max_steps
