"""Inference: ``scripts/denoise.py`` per backend in fresh processes (Mpix/s, peak memory), round-robin so
that load drifts hit every backend alike, and ONNX Runtime's bare forward in the same run."""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

from benchmarks.measure import child_env, median_seconds, phantom_folder, run_process

LOOP = re.compile(r"([\d.]+) Mpix, ([\d.]+) s,")  # denoise.py's summary line: the images loop alone


def denoise_rows(
    section: str,
    repo: Path,
    checkpoint: Path,
    run_dir: Path,
    backends: list[str],
    size: int,
    images: int,
    rounds: int,
    warmup: bool = True,
    device: str = "cpu",
    timeout_s: float = 3600,
) -> list[dict]:
    """One row per backend: ``denoise.py backend=<b>`` on ``images`` 16-bit PNGs of ``size``². ``rounds``
    timed rounds, the order of the backends reversed every round; ``warmup``: first an untimed run on one
    small image (bytecode and ONNX export cached). ``section`` ``endtoend``: Mpix/s from process start
    to exit (median), else of the images loop alone (denoise.py's own timing)."""
    folder = phantom_folder(run_dir.parent / "images" / f"{images}x{size}", size, images)
    small = phantom_folder(run_dir.parent / "images" / "1x256", 256, 1)
    runs: dict[str, list[dict]] = {b: [] for b in backends}
    for round_ in range(0 if warmup else 1, rounds + 1):
        for backend in backends if round_ % 2 else backends[::-1]:
            if runs[backend] and runs[backend][-1]["code"] != 0:
                continue  # failed: not again
            command = [
                sys.executable,
                str(repo / "scripts" / "denoise.py"),
                f"input={folder if round_ else small}",
                f"output={run_dir / 'denoised' / backend}",
                f"ckpt={checkpoint}",
                f"backend={backend}",
                f"device={device}",
                "progress=false",
                "overwrite=true",
                f"hydra.run.dir={run_dir / 'denoise_runs' / backend}",
            ]
            result = run_process(command, repo, child_env(run_dir / "cache"), timeout_s)
            if round_ or result["code"] != 0:
                runs[backend].append(result)
    rows = []
    for backend, results in runs.items():
        row = {
            "section": section,
            "case": f"backend={backend}",
            "size": f"{images}×{size}²" if images > 1 else f"{size}²",
        }
        if results[-1]["code"] != 0:
            rows.append({**row, "note": f"failed: {results[-1]['output'].strip()[-300:]}"})
            continue
        seconds = [r["seconds"] for r in results]
        loops = [float(m.group(2)) for r in results if (m := LOOP.search(r["output"]))]
        timed = seconds if section == "endtoend" or not loops else loops
        note = "process s per round: " + ", ".join(f"{s:.1f}" for s in seconds)
        if loops:
            note += f"; start-up + model ≈ {statistics.median(seconds) - statistics.median(loops):.1f} s"
        rate = images * size * size / 1e6 / statistics.median(timed)
        peak = max(r["peak_mb"] or 0 for r in results)
        rows.append({**row, "value": rate, "unit": "Mpix/s", "peak_mb": peak, "note": note})
    return rows


def bare_onnx_row(checkpoint: Path, run_dir: Path, size: int, repeats: int) -> dict:
    """ONNX Runtime fp32 on one ``size``² phantom, the bare network in this process (the end-to-end floor)."""
    from datamodules.phantom import chest_phantom
    from lightning_modules.inference.backends import choose_path, load_predictor
    from lightning_modules.nets.forward import run_network

    row = {"section": "endtoend", "case": "ONNX Runtime fp32, bare network", "size": f"{size}²"}
    try:
        path = choose_path("onnxruntime", "32", "cpu")
        net, path = load_predictor(checkpoint, "cpu", path, cache_dir=run_dir / "cache" / "xray-denoise" / "onnx")
    except ImportError as err:
        return {**row, "note": f"skipped: {err}"}
    x = chest_phantom(size, seed=0)[None, None]
    seconds = median_seconds(lambda: run_network(net, x), repeats)
    return {**row, "value": size * size / 1e6 / seconds, "unit": "Mpix/s", "note": f"median of {repeats} calls"}
