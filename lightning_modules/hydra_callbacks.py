"""A Hydra callback that records each job's outcome in its folder, so a failed sweep job shows as failed.

Hydra re-raises a failed job's exception only at the end of the whole sweep and writes nothing into the
job's folder; ``job_status.json`` (status, error, traceback) fills that gap for ``scripts/report.py sweep=``.
"""

from __future__ import annotations

import json
import traceback
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from datamodules.atomic import atomic_write_text
from lightning_modules.ranks import is_rank_zero

STATUS_FILE = "job_status.json"


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
            folder = Path(config.hydra.runtime.output_dir)
            atomic_write_text(folder / STATUS_FILE, json.dumps(record, indent=2) + "\n")
        except Exception as err:  # noqa: BLE001 - a status file must never break the job itself
            warnings.warn(f"could not write {STATUS_FILE}: {err}", stacklevel=1)
