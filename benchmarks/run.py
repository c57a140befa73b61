"""``run_benchmark(cfg)``: the sections of ``cfg.sections``, one table printed and written as
``benchmark.md`` and ``benchmark.json`` into the run folder."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from benchmarks.inference import bare_onnx_row, denoise_rows
from benchmarks.training import conv_ceiling, gflop_per_mpix, training_step_rate

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("forward", "endtoend", "training")
HEADERS = ("section", "case", "size", "result", "% of conv ceiling", "peak RSS (MB)", "note")


def model_checkpoint(model: str, run_dir: Path) -> Path:
    """``auto``: the shipped model, else untrained weights of the default config's network."""
    from lightning_modules.nets.checkpoints import save_weights
    from lightning_modules.nets.unet import DenoisingUnet
    from lightning_modules.runs.folders import PRETRAINED_DIR, PRETRAINED_WEIGHTS

    if model != "auto":
        return Path(model).expanduser()
    if (PRETRAINED_DIR / PRETRAINED_WEIGHTS).is_file():
        return PRETRAINED_DIR / PRETRAINED_WEIGHTS
    hparams = {"encoder_name": "resnet18", "residual": True, "norm": "group"}
    return save_weights(run_dir / "untrained.pth", DenoisingUnet(**hparams), hparams)


def run_benchmark(cfg: DictConfig) -> list[dict]:
    from lightning_modules.inference.backends import pick_device
    from lightning_modules.nets.checkpoints import load_network
    from lightning_modules.nets.unet import DenoisingUnet

    unknown = sorted(set(cfg.sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(str(cfg.device))
    checkpoint = model_checkpoint(str(cfg.model), run_dir)
    net, _ = load_network(checkpoint)
    c = cfg.ceiling
    ceiling = conv_ceiling(device, int(c.channels), int(c.size), int(c.repeats))
    rows = [{"section": "ceiling", "case": f"conv 3×3 fp32, {c.channels} channels", "size": f"{c.size}²",
             "value": ceiling, "unit": "GFLOP/s", "note": f"{device}, channels_last"}]  # fmt: skip
    forward_flops = gflop_per_mpix(net.to(device), backward=False)
    for section in (s for s in SECTIONS if s in cfg.sections):
        start = time.perf_counter()
        if section == "forward":
            f = cfg.forward
            for size in f.sizes:
                rows += denoise_rows(
                    section, REPO, checkpoint, run_dir, list(f.backends), int(size), 1, int(f.repeats),
                    bool(f.warmup), str(device), float(cfg.timeout_s),
                )  # fmt: skip
        elif section == "endtoend":
            e = cfg.endtoend
            rows += denoise_rows(
                section, REPO, checkpoint, run_dir, list(e.backends), int(e.size), int(e.images), int(e.rounds),
                True, str(device), float(cfg.timeout_s),
            )  # fmt: skip
            rows.append(bare_onnx_row(checkpoint, run_dir, int(e.onnx_size), int(e.onnx_repeats)))
        else:
            t = cfg.training
            model = DenoisingUnet(**OmegaConf.to_container(cfg.network))
            flops = gflop_per_mpix(model.to(device), backward=True)
            rate = training_step_rate(model, device, int(t.batch_size), int(t.patch_size), int(t.steps))
            rows.append({"section": section, "case": "step: forward, L1, backward, Adam (fp32)",
                         "size": f"{t.batch_size}×{t.patch_size}²", "value": rate, "unit": "Mpix/s",
                         "pct": 100 * rate * flops / ceiling, "note": f"{flops:.1f} GFLOP/Mpix"})  # fmt: skip
        for row in rows:
            if row["section"] in ("forward", "endtoend") and row.get("unit") == "Mpix/s" and "pct" not in row:
                row["pct"] = 100 * row["value"] * forward_flops / ceiling
        print(f"benchmark: {section} took {time.perf_counter() - start:.0f} s", flush=True)
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    write_table(run_dir, rows, f"{machine}; model {checkpoint}; {time.strftime('%Y-%m-%d %H:%M')}", cfg)
    return rows


def _cells(row: dict) -> list[str]:
    value = row.get("value")
    result = f"{value:.3g} {row['unit']}" if value is not None else "–"
    pct = f"{row['pct']:.1f} %" if row.get("pct") is not None else ""
    peak = f"{row['peak_mb']:.0f}" if row.get("peak_mb") else ""
    return [row["section"], row["case"], row.get("size", ""), result, pct, peak, row.get("note", "")]


def write_table(run_dir: Path, rows: list[dict], title: str, cfg: Any) -> None:
    lines = [f"# Benchmark: {title}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (run_dir / "benchmark.md").write_text(text)
    payload = {"title": title, "rows": rows, "config": OmegaConf.to_container(cfg, resolve=True)}
    (run_dir / "benchmark.json").write_text(json.dumps(payload, indent=1, default=str))
    print(text + f"Written: {run_dir / 'benchmark.md'} and benchmark.json", flush=True)
