"""Writing a report: Markdown tables, an HTML copy, and provenance (software, git, checkpoint)."""

from __future__ import annotations

import hashlib
import html as html_text
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from datamodules.io.atomic import atomic_write_text
from lightning_modules.runs.records import commit_label, versions

PACKAGES = (
    "xray-denoise",
    "torch",
    "torchmetrics",
    "segmentation-models-pytorch",
    "numpy",
    "scipy",
    "scikit-image",
    "matplotlib",
    "hydra-core",
    "omegaconf",
    "bm3d",
)
HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
img { max-width: 100%; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f5f5f5; }
"""


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align_right: bool = True) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the others right-aligned (numbers)."""
    rule = ["---:" if align_right else ":---"] * (len(header) - 1)
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join([":---", *rule]) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_document(markdown: str, md_path: str | Path, title: str, html: bool = True) -> list[Path]:
    """Write the Markdown file and, with ``html``, an HTML copy beside it (figures by relative path).

    The HTML is rendered with ``markdown-it-py`` (installed with ``rich``); when it is missing only
    the Markdown file is written.
    """
    md_path = Path(md_path)
    written = [atomic_write_text(md_path, markdown)]
    if html:
        try:
            from markdown_it import MarkdownIt
        except ImportError:
            return written
        body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
        page = (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html_text.escape(title, quote=False)}</title>\n'
            f"<style>{HTML_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
        )
        written.append(atomic_write_text(md_path.with_suffix(".html"), page))
    return written


def software_versions() -> dict[str, str]:
    """Python, platform, the packages that shape the numbers, the compute device and the git commit."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    found.update({k: v for k, v in versions(PACKAGES).items() if k != "python"})
    found["cuda device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    found["cpu"] = platform.processor() or platform.machine()
    found["git commit"] = commit_label()
    return found


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Path, size, SHA-256 and, when recorded, the epoch, step and validation PSNR of a checkpoint."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    info: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    if path.suffix == ".safetensors":  # an export: weights and hyper-parameters only
        return info
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    for key in ("epoch", "global_step", "val/psnr"):
        value = checkpoint.get(key)
        if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1):
            info[key] = float(value) if isinstance(value, torch.Tensor) else value
    return info
