"""The machine and software a benchmark ran on: CPU, cores, bf16 support, GPU, versions, commit."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from lightning_modules.inference.backends import bf16_native
from lightning_modules.runs.records import commit_label
from lightning_modules.runs.records import versions as package_versions

PACKAGES = ("torch", "onnxruntime", "onnx", "segmentation-models-pytorch", "lightning", "numpy", "scikit-image", "bm3d")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector-extension flags that matter here (AVX2, AVX-512, bf16, AMX)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def versions() -> dict[str, str]:
    return package_versions(PACKAGES)


def machine_info() -> dict[str, Any]:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory_gb = psutil.virtual_memory().total / 1e9
    except ImportError:
        physical, memory_gb = None, None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "memory_gb": round(memory_gb, 1) if memory_gb else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16_native": bf16_native("cpu"),
        "gpu": gpu,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python_bytecode_cache": not (sys.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "versions": versions(),
        "git_commit": commit_label(short=True),
    }
