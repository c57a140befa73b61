"""Timers, peak resident memory (this process or a child) and measured subprocesses."""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Timing:
    """``first_s``: the first (warm-up) call; ``seconds``: the timed calls after it."""

    first_s: float
    seconds: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else self.first_s


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_calls(
    fn: Callable[[], object],
    repeats: int = 2,
    budget_s: float | None = None,
    device: torch.device | str = "cpu",
) -> Timing:
    """Call ``fn`` once as warm-up, then up to ``repeats`` more times (fewer once ``budget_s`` is spent)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    first = time.perf_counter() - start
    seconds: list[float] = []
    spent = first
    for _ in range(repeats):
        if seconds and budget_s is not None and spent >= budget_s:
            break
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        spent += seconds[-1]
    return Timing(first, seconds)


def trim_memory() -> None:
    """Collect garbage and give freed heap back to the OS (glibc), so peaks start from a low base."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB (since the last :func:`reset_peak_rss`)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


@dataclass
class ProcessResult:
    returncode: int
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str


# A small launcher process forks and execs the command and reports the child's wait4() usage.
# Measuring from the (large) benchmark process directly would not work: Linux records the
# parent's resident size at fork + exec as the child's starting peak (ru_maxrss).
_LAUNCHER = """
import json, os, signal, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[3], sys.argv[3:])
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(int(sys.argv[2]))
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "seconds": seconds, "maxrss_kib": usage.ru_maxrss}, f)
"""


def run_process(
    command: Sequence[str],
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 1800,
) -> ProcessResult:
    """Run ``command`` (its first item an executable path); wall time from launch to exit and the
    command's own peak resident memory."""
    import json
    import shutil
    import sys

    executable = command[0] if os.path.isabs(command[0]) else shutil.which(command[0]) or command[0]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage.json"
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            launcher = [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _LAUNCHER,
                str(report),
                str(max(1, int(timeout_s))),
                executable,
                *command[1:],
            ]
            try:
                subprocess.run(launcher, cwd=cwd, env=env, stdout=out, stderr=err, timeout=timeout_s + 60, check=False)
            except subprocess.TimeoutExpired:
                pass
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if not report.is_file():
            return ProcessResult(-1, timeout_s, 0.0, stdout, stderr + f"\n(no result: killed after {timeout_s} s?)")
        usage = json.loads(report.read_text())
    return ProcessResult(usage["code"], usage["seconds"], usage["maxrss_kib"] * 1024 / 1e6, stdout, stderr)
