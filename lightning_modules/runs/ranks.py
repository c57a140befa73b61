"""The rank of this process among distributed training processes, without importing Lightning
(Hydra callbacks and report code use it and must stay light)."""

from __future__ import annotations

import os

# Where launchers put a process's global rank (Lightning reads the same variables).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def process_rank() -> int:
    """Global rank of this process as its launcher set it (0 when not distributed)."""
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def is_rank_zero() -> bool:
    """Whether this process writes logs, records and results (only rank 0 does)."""
    return process_rank() == 0
