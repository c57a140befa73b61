"""The docs a newcomer reads first cannot drift from the code: the README's table of configuration groups."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def config_group_table(readme: str) -> dict[str, list[str]]:
    """``group -> options`` of the README's "Configuration groups" table (the backticked names of the
    options column, without "(default)")."""
    section = readme.split("## Configuration groups", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        table[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return table


def test_readme_config_table_lists_exactly_the_options_in_conf():
    table = config_group_table((REPO / "README.md").read_text(encoding="utf-8"))
    assert {"data", "data/noise", "model", "loss", "training", "optim", "trainer", "experiment"} <= set(table)
    for group, options in table.items():
        folder = REPO / "conf" / group
        assert folder.is_dir(), f"README names the config group {group!r}, but conf/{group}/ does not exist"
        on_disk = sorted(path.stem for path in folder.glob("*.yaml"))
        assert sorted(options) == on_disk, f"README's {group} options {sorted(options)} != conf/{group}/ {on_disk}"


def test_the_table_parser_sees_a_drifted_row():
    readme = "## Configuration groups (`conf/`)\n\n| group | options | notes |\n|---|---|---|\n"
    readme += "| `loss` | `l1` (default), `mse` | notes with `code` |\n\n## Next\n| `x` | `y` | |\n"
    assert config_group_table(readme) == {"loss": ["l1", "mse"]}
