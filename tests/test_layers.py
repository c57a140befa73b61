"""Imports go downwards only: every module of ``datamodules`` and ``lightning_modules`` belongs to a
layer, imports nothing from a higher layer, and no imports form a cycle. Imports inside functions count
(they hide a dependency, they do not remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("datamodules", "lightning_modules")
# Bottom to top. A module belongs to the layer of the longest prefix it starts with.
LAYERS = (
    "datamodules.io",
    "datamodules",
    "lightning_modules.nets",
    "lightning_modules.selfsup",
    "lightning_modules.runs",
    "lightning_modules.inference",
    "lightning_modules.classical",
    "lightning_modules.training",
    "lightning_modules.report",
    "lightning_modules.commands",
)
# The package itself: a docstring, no imports; nothing it could depend on.
ROOTS = {"lightning_modules": 0}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` (0 = bottom), ``None`` for a module no layer holds."""
    if module in ROOTS:
        return ROOTS[module]
    matches = [i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> list[tuple[int, str, str]]:
    """``(line, imported module, statement)`` for every project import in ``source``, at any depth.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module in ``known``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        statement = ast.unparse(node)
        for target in dict.fromkeys(targets):
            if target.split(".")[0] in PACKAGES:
                found.append((node.lineno, target, statement))
    return found


def import_graph(root: Path = REPO) -> dict[str, list[tuple[int, str, str]]]:
    """Module name -> its project imports, for every ``.py`` under the packages in ``root``."""
    files = {
        module_name(path, root): path
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }
    known = set(files)
    return {
        module: imports_of(module, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
        for module, path in files.items()
    }


def upward_imports(graph: dict[str, list[tuple[int, str, str]]], root: Path = REPO) -> list[str]:
    """One line per import from a higher layer (and per module in no layer)."""
    problems = []
    for module, imports in sorted(graph.items()):
        own = layer_of(module)
        if own is None:
            problems.append(f"{module}: in no layer; add its subpackage to LAYERS in tests/test_layers.py")
            continue
        path = module.replace(".", "/") + ("/__init__.py" if (root / module.replace(".", "/")).is_dir() else ".py")
        for line, target, statement in imports:
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                problems.append(
                    f"{path}:{line}: `{statement}` imports {LAYERS[theirs]} from the lower layer {LAYERS[own]}"
                )
    return problems


def find_cycle(graph: dict[str, list[tuple[int, str, str]]]) -> list[str] | None:
    """A cycle of module imports (``[a, b, ..., a]``), or ``None``: depth-first search over ``graph``."""
    edges = {
        module: sorted({target for _, target, _ in imports if target in graph}) for module, imports in graph.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in edges[module]:
            if target == module:
                continue  # `from pkg import name` inside pkg/__init__.py names its own attribute
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_module_imports_from_a_higher_layer():
    graph = import_graph()
    assert len(graph) > 50 and sum(len(imports) for imports in graph.values()) > 150  # the walk sees the code
    problems = upward_imports(graph)
    assert not problems, "imports that run back up:\n" + "\n".join(problems)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _fake_tree(root: Path, files: dict[str, str]) -> dict[str, list[tuple[int, str, str]]]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return import_graph(root)


def test_the_checks_see_an_upward_import_a_hidden_one_and_a_cycle(tmp_path):
    graph = _fake_tree(
        tmp_path,
        {
            "datamodules/__init__.py": "",
            "datamodules/io/__init__.py": "",
            "datamodules/io/images.py": "def read():\n    from .tiff import read_tiff\n",
            "datamodules/io/tiff.py": "from datamodules.io.images import read\n",
            "lightning_modules/__init__.py": "",
            "lightning_modules/runs/__init__.py": "",
            "lightning_modules/runs/config.py": "import os\nfrom lightning_modules.training import optim\n",
            "lightning_modules/runs/hydra.py": "def f():\n    from ..inference.backends import bf16_native\n",
            "lightning_modules/training/__init__.py": "",
            "lightning_modules/training/optim.py": "from lightning_modules.runs.config import x\n",
            "lightning_modules/inference/__init__.py": "",
            "lightning_modules/inference/backends.py": "from datamodules.io import images\n",
            "lightning_modules/extra/__init__.py": "",
        },
    )
    assert graph["lightning_modules.runs.config"][0][1] == "lightning_modules.training.optim"
    assert graph["datamodules.io.images"] == [(2, "datamodules.io.tiff", "from .tiff import read_tiff")]
    assert upward_imports(graph, tmp_path) == [
        "lightning_modules.extra: in no layer; add its subpackage to LAYERS in tests/test_layers.py",
        "lightning_modules/runs/config.py:2: `from lightning_modules.training import optim` imports "
        "lightning_modules.training from the lower layer lightning_modules.runs",
        "lightning_modules/runs/hydra.py:2: `from ..inference.backends import bf16_native` imports "
        "lightning_modules.inference from the lower layer lightning_modules.runs",
    ]
    assert find_cycle(graph) == ["datamodules.io.images", "datamodules.io.tiff", "datamodules.io.images"]
    del graph["datamodules.io.tiff"]
    assert find_cycle(graph) == [
        "lightning_modules.runs.config",
        "lightning_modules.training.optim",
        "lightning_modules.runs.config",
    ]
