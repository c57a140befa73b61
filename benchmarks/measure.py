"""Timers, a measured child process (wall time and its own peak memory) and test images."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# A small launcher forks and execs the command and reports the child's own wait4() usage: measured from
# a large parent, Linux would count the parent's resident size at fork + exec as the child's peak.
_LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
json.dump({"code": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - start,
           "peak_mb": usage.ru_maxrss * 1024 / 1e6}, open(sys.argv[1], "w"))
"""


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_process(command: Sequence[str], cwd: Path, env: dict[str, str], timeout_s: float) -> dict:
    """``{"code", "seconds", "peak_mb", "output"}`` of ``command`` (an absolute executable first)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage.json"
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *command]
        try:
            done = subprocess.run(launcher, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            output = f"killed after {timeout_s} s"
        if not report.is_file():
            return {"code": -1, "seconds": timeout_s, "peak_mb": None, "output": output}
        return {**json.loads(report.read_text()), "output": output}


def phantom_folder(folder: Path, size: int, count: int) -> Path:
    """``count`` 16-bit PNG chest phantoms of ``size``² in ``folder``, written once and reused."""
    from datamodules.io.images import write_image
    from datamodules.io.pixels import ImageInfo
    from datamodules.phantom import chest_phantom

    for index in range(count):
        path = folder / f"phantom_{index}.png"
        if not path.is_file():
            write_image(path, chest_phantom(size, seed=index).numpy(), ImageInfo(16, ".png"))
    return folder


def child_env(cache: Path) -> dict[str, str]:
    """Measured processes cache ONNX exports in ``cache`` and Python bytecode as an install does."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return env
