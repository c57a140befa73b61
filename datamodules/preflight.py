"""Decode every image a run will use once, before training, so a bad file is named before the first step.

Listing and pairing (:mod:`datamodules.io.pairing`) read headers only; a truncated PNG, a colour image
or an undecodable DICOM would otherwise surface in the middle of an epoch (or at the end of ``fit``,
for the test split). Results are cached by absolute path, size and modification time, so a rerun on
unchanged data decodes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datamodules.io.atomic import atomic_write_text
from datamodules.io.images import check_bit_depth, read_image
from datamodules.io.pairing import DatasetLayoutError
from datamodules.io.pixels import BitDepth, ImageReadError

CACHE_VERSION = 1
SHOWN_FAILURES = 10


@dataclass
class PreflightResult:
    """What :func:`decode_all` found: how many files were checked, decoded now or known from the cache."""

    checked: int = 0
    decoded: int = 0
    cached: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # path -> reason

    def summary(self) -> str:
        return (
            f"pre-flight: {self.checked} images fully decoded and fine "
            f"({self.decoded} read now, {self.cached} unchanged since the last check) in {self.seconds:.1f} s"
        )


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _load_cache(cache_file: Path | None) -> dict[str, str]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}  # a damaged cache only costs a full check
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return {str(k): str(v) for k, v in data.get("good", {}).items()}


def _decode(path: Path, bit_depth: BitDepth = "auto") -> str | None:
    """``None`` when ``path`` decodes as a greyscale radiograph (of ``bit_depth``), else the reason it does not."""
    try:
        read_image(path, bit_depth)
    except ImageReadError as err:
        return str(err).removeprefix(f"{path}: ")
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file to report, not a crash
        return f"{type(err).__name__}: {err}"
    return None


def decode_all(
    paths: Iterable[str | os.PathLike],
    cache_file: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    bit_depth: object = "auto",
) -> PreflightResult:
    """Fully decode each file once (in parallel threads), skipping files the cache knows to be good.

    Args:
        paths: the image files; duplicates are checked once.
        cache_file: JSON file of files known to decode (absolute path -> size and mtime); ``None``: no cache.
        workers: decoding threads (``None``: one per CPU core).
        progress: show a progress bar (``None``: only when stderr is a terminal).
        bit_depth: the run's ``data.bit_depth`` (``auto`` or ``None``: from each file); a stated depth also
            checks that every value fits it, and files cached as good under another depth are decoded again.

    Raises:
        DatasetLayoutError: one or more files cannot be used; the message names each (up to ten) and why.
    """
    start = time.perf_counter()
    bit_depth = check_bit_depth(bit_depth, "data.bit_depth")
    tag = "" if bit_depth == "auto" else f":{bit_depth}-bit"  # a file fine as auto may not fit 12 bits
    files = sorted({Path(p).resolve() for p in paths})
    cache_path = Path(cache_file) if cache_file is not None else None
    known = _load_cache(cache_path)
    result = PreflightResult(checked=len(files))
    todo, stamps = [], {}
    for path in files:
        try:
            stamps[path] = _stamp(path) + tag
        except OSError as err:
            result.failures[str(path)] = f"cannot open ({err.strerror or err})"
            continue
        if known.get(str(path)) == stamps[path]:
            result.cached += 1
        else:
            todo.append(path)
    workers = max(1, int(workers) if workers else (os.cpu_count() or 1))
    show = sys.stderr.isatty() if progress is None else progress
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        Progress(
            TextColumn("pre-flight: decoding images"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=not show or not todo,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("decode", total=len(todo))
        for path, reason in zip(todo, pool.map(partial(_decode, bit_depth=bit_depth), todo)):
            bar.advance(task)
            if reason is None:
                known[str(path)] = stamps[path]
                result.decoded += 1
            else:
                result.failures[str(path)] = reason
                known.pop(str(path), None)
    if cache_path is not None and todo:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_path, json.dumps({"version": CACHE_VERSION, "good": known}) + "\n")
        except OSError:
            pass  # the cache only saves time; an unwritable one must not stop the run
    result.seconds = time.perf_counter() - start
    if result.failures:
        raise DatasetLayoutError(_failure_message(result.failures, len(files)))
    return result


def _failure_message(failures: dict[str, str], total: int) -> str:
    lines = [f"{path}: {reason}" for path, reason in sorted(failures.items())[:SHOWN_FAILURES]]
    more = len(failures) - SHOWN_FAILURES
    if more > 0:
        lines.append(f"... and {more} more")
    head = (
        f"{lines[0]}"
        if len(failures) == 1
        else f"{len(failures)} of {total} images cannot be used; fix or remove them:\n  " + "\n  ".join(lines)
    )
    return head + ("" if len(failures) > 1 else " (checked before training; fix or remove the file)")
