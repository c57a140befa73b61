"""Benchmark rows and targets as one rich table, a Markdown file and a JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from datamodules.io.atomic import atomic_write_text

COMMAND = "uv run python scripts/benchmark.py"


@dataclass
class Row:
    """One measurement. ``value`` is in ``unit``; ``pct_ceiling`` is the share of the measured
    3×3-convolution ceiling of the same precision that the model's FLOPs at this rate represent."""

    section: str
    case: str
    size: str = ""
    value: float | None = None
    unit: str = ""
    pct_ceiling: float | None = None
    peak_mb: float | None = None
    note: str = ""


@dataclass
class Target:
    """A target of the issue: ``status`` is ``met``, ``missed`` or ``n/a``."""

    name: str
    goal: str
    measured: str
    status: str
    note: str = ""


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _cells(row: Row) -> list[str]:
    value = f"{fmt(row.value)} {row.unit}".strip() if row.value is not None else (row.unit or "–")
    pct = f"{row.pct_ceiling:.0f} %" if row.pct_ceiling is not None else ""
    peak = fmt(row.peak_mb) if row.peak_mb is not None else ""
    return [row.section, row.case, row.size, value, pct, peak, row.note]


HEADERS = ["section", "case", "size", "result", "% of ceiling", "peak RSS (MB)", "note"]


def rich_table(rows: list[Row], targets: list[Target], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    section = None
    for row in rows:
        if section is not None and row.section != section:
            table.add_section()
        section = row.section
        table.add_row(*_cells(row))
    if targets:
        table.add_section()
        for target in targets:
            mark = {"met": "[green]met[/]", "missed": "[red]missed[/]"}.get(target.status, target.status)
            table.add_row("target", target.name, "", target.measured, mark, "", f"{target.goal}. {target.note}".strip())
    return table


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(machine: dict[str, Any], rows: list[Row], targets: list[Target], notes: list[str]) -> str:
    v = machine["versions"]
    lines = [
        "# Benchmark",
        "",
        f"`{COMMAND}` on {machine['date']}, commit {machine['git_commit']}.",
        "",
        f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores, torch threads {machine['torch_threads']}, "
        f"flags: {', '.join(machine['cpu_flags']) or 'none of AVX2/AVX-512/AMX'}; native bf16: "
        f"{'yes' if machine['cpu_bf16_native'] else 'no (bf16 is emulated: slow)'}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average'] or [])}",
        f"- GPU: {machine['gpu']}",
        f"- python {v['python']}, torch {v['torch']}, onnxruntime {v['onnxruntime']}, "
        f"segmentation-models-pytorch {v['segmentation-models-pytorch']}, lightning {v['lightning']}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in _cells(row)) + " |" for row in rows]
    if targets:
        lines += ["", "## Targets", "", "| target | goal | measured | status | note |", "|---|---|---|---|---|"]
        lines += [
            f"| {_md_escape(t.name)} | {_md_escape(t.goal)} | {_md_escape(t.measured)} | {t.status} | {_md_escape(t.note)} |"
            for t in targets
        ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: str | Path,
    machine: dict[str, Any],
    rows: list[Row],
    targets: list[Target],
    notes: list[str],
    settings: dict[str, Any],
) -> tuple[Path, Path]:
    """Write ``benchmark.md`` and ``benchmark.json`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    md = atomic_write_text(out_dir / "benchmark.md", markdown(machine, rows, targets, notes))
    payload = {
        "command": COMMAND,
        "machine": machine,
        "settings": settings,
        "rows": [asdict(r) for r in rows],
        "targets": [asdict(t) for t in targets],
        "notes": notes,
    }
    js = atomic_write_text(out_dir / "benchmark.json", json.dumps(payload, indent=2) + "\n")
    return md, js
