"""Run folders under Hydra: multirun job folder names, a folder of its own for every run, and a callback
that records each job's outcome in its folder, so a failed sweep job shows as failed. The resolvers that
use the folder names are registered by :mod:`lightning_modules.commands.resolvers`.

Hydra re-raises a failed job's exception only at the end of the whole sweep and writes nothing into the
job's folder; ``job_status.json`` (status, error, traceback) fills that gap for ``scripts/report.py sweep=``.
A job that continued an earlier run (``resume=auto``) trains in that run's folder, not in its own: it
leaves ``continues_run.txt`` in its own folder, and the status goes to both, so the continued run no
longer shows the outcome of its interrupted attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from datamodules.io.atomic import atomic_write_text
from lightning_modules.runs.ranks import is_rank_zero, process_rank

STATUS_FILE = "job_status.json"
# Written by train() into the job's own folder when it continues another run's folder: that folder's path.
CONTINUES_FILE = "continues_run.txt"


# Most file systems refuse names over 255 bytes; a multirun job folder named after many overrides
# would fail to be created.
MAX_JOB_DIRNAME = 160


def job_dirname(num: int, overrides: str) -> str:
    """``<num>_<overrides>`` for a multirun job folder, shortened with a hash when too long."""
    name = f"{num}_{overrides}" if overrides else str(num)
    if len(name.encode()) <= MAX_JOB_DIRNAME:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:8]
    return f"{name.encode()[: MAX_JOB_DIRNAME - 10].decode(errors='ignore')}_{digest}"


def unique_dir(path: str) -> str:
    """``path``, created here and now; ``path_1``, ``path_2``, ... when another process created it first.

    Run and multirun folders are named after the time to the second, so two trainings started in the
    same second (a sweep on a cluster) used to share one folder. ``os.mkdir`` creates a folder only if
    it does not exist, atomically (also on NFS), so each caller gets a folder of its own whatever the
    clock says. Registered with ``use_cache``: Hydra resolves a run's folder several times (and copies
    the resolved value into every job of a sweep, pickled jobs included), and each gets this one.
    Extra ranks of a ``torchrun``/SLURM-task launch keep the plain name, as they did before: they
    write nothing of their own there.
    """
    base = Path(path)
    if process_rank() != 0:
        return str(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(100_000):
        candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return str(candidate)
    raise FileExistsError(f"{base}: 100000 folders of this name exist already")


def write_job_status(folder: str | os.PathLike, record: dict[str, Any]) -> None:
    """``folder/job_status.json``, and the same in the run ``folder`` continued (``continues_run.txt``)."""
    folder = Path(folder)
    text = json.dumps(record, indent=2) + "\n"
    atomic_write_text(folder / STATUS_FILE, text)
    if (folder / CONTINUES_FILE).is_file():
        atomic_write_text(Path((folder / CONTINUES_FILE).read_text().strip()) / STATUS_FILE, text)


class JobStatusRecorder(Callback):
    """Writes ``<job folder>/job_status.json``: ``{"status": "COMPLETED"|"FAILED", "error", "traceback", ...}``."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not is_rank_zero():  # extra DDP ranks run the job too; rank 0 speaks for it
            return
        record: dict[str, Any] = {
            "status": job_return.status.name,
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "overrides": list(job_return.overrides or []),
        }
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # .return_value would re-raise it
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = "".join(traceback.format_exception(error))
        try:
            write_job_status(config.hydra.runtime.output_dir, record)
        except Exception as err:  # noqa: BLE001 - a status file must never break the job itself
            warnings.warn(f"could not write {STATUS_FILE}: {err}", stacklevel=1)
