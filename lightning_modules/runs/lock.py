"""One training process per run folder: ``<run>/.train.lock``, held with ``fcntl.flock`` while it trains.

A run being trained (or resumed) holds an exclusive lock on the file for as long as the process lives;
a second process on the same folder (two ``resume=auto`` reruns of one unfinished run, or two
commands given the same ``hydra.run.dir``) refuses in one line naming the holder's pid and start time.
The operating system drops the lock when the holder dies, however it dies (``kill -9`` included), so a
stale lock file never blocks: only a living process can hold it. The file itself stays in the folder
(removing it would let a third process lock a file the second one has already opened).

Runs started before this lock existed hold none, so they are not protected.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".train.lock"


class RunLockedError(RuntimeError):
    """Another living process trains this run folder."""


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the holder wrote into the lock file (``pid``, ``started``); empty when unknown."""
    try:
        return json.loads((Path(run_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """An exclusive lock on ``run_dir``; :meth:`release` (or process death) frees it."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, advice: str = "wait for it to end") -> RunLock:
        """Lock the folder or raise :class:`RunLockedError` naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = lock_holder(self.run_dir)
            who = f"process {holder['pid']}" if "pid" in holder else "another process"
            since = f" (started {holder['started']})" if "started" in holder else ""
            raise RunLockedError(f"{self.run_dir} is being trained by {who}{since}; {advice}") from None
        record = {"pid": os.getpid(), "started": datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
