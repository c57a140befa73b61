"""``failed.txt``: the files a batch command could not process, and why, beside its other outputs.

``denoise.py``, ``test.py`` and ``report.py`` process every other file, count the failures in their
summary and exit with code 1; the list is removed again by a later run in which nothing failed.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.io.atomic import atomic_write_text

FAILED_LIST = "failed.txt"


def write_failures(folder: str | Path, failed: list[tuple[str | Path, str]]) -> Path | None:
    """Write ``folder/failed.txt`` (one ``file<TAB>reason`` a line), or remove a stale one when none failed."""
    path = Path(folder) / FAILED_LIST
    if failed:
        return atomic_write_text(path, "".join(f"{source}\t{reason}\n" for source, reason in failed))
    path.unlink(missing_ok=True)
    return None
