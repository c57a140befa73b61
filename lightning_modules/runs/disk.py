"""A full disk, said in one line: ``<path>: no space left on device (...)``.

Writes that fail for lack of space arrive as ``OSError(ENOSPC)`` from Python, or, from ``torch.save``,
as ``RuntimeError: [enforce fail at inline_container.cc:...]`` / ``PytorchStreamWriter failed writing
file ...`` with the ``Errno 28`` only somewhere in the exception chain (or nowhere). :func:`is_disk_full`
recognises both; the callers raise :class:`DiskFullError`, whose message names the file. Every such
write goes through a temporary file (``datamodules.io.atomic``), so nothing half-written stays behind.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# What torch's zip writer says when a write fails (it rarely carries the errno itself).
TORCH_WRITE_FAILURES = ("inline_container", "PytorchStreamWriter failed", "file write failed")
MB = 1024 * 1024


class DiskFullError(OSError):
    """A write failed because the file system is full; the message names the file."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the file system of ``path`` (its nearest existing parent); ``None`` if unknown."""
    path = Path(path).absolute()
    for folder in [path, *path.parents]:
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def is_disk_full(err: BaseException, path: str | os.PathLike, needed: int = 0) -> bool:
    """Whether ``err`` (raised while writing ``path``) means the disk is full.

    True for ``ENOSPC`` (or its text) anywhere in the exception chain; for torch's writer failures
    without an errno, true when the file system now has less than ``needed`` bytes free.
    """
    chain = _chain(err)
    for item in chain:
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(item)
        if "No space left on device" in text or "Errno 28" in text or "error code: 28" in text:
            return True
    if any(isinstance(item, RuntimeError) and any(s in str(item) for s in TORCH_WRITE_FAILURES) for item in chain):
        free = free_bytes(Path(path).parent)
        return free is not None and free < max(needed, 1 * MB)
    return False


def human_size(n: int) -> str:
    """``512 B``, ``4 kB``, ``170 MB``, ``1.2 GB`` (binary units)."""
    for unit, size in (("GB", 1024 * MB), ("MB", MB), ("kB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if unit == "GB" and value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"


def disk_full_message(path: str | os.PathLike, what: str, needed: int = 0) -> str:
    """``<path>: no space left on device (<what>; N MB free[, needs about M MB])``."""
    free = free_bytes(Path(path).parent)
    sizes = [] if free is None else [f"{human_size(free)} free"]
    if needed:
        sizes.append(f"needs about {human_size(needed)}")
    return f"{path}: no space left on device ({what}{'; ' + ', '.join(sizes) if sizes else ''})"
