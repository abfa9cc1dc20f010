"""The layers of service/ as docs/architecture.md's table states them: every module is in
one layer, imports only from its own layer or the ones above it in the table, and no
imports go round in a cycle. Modules are named by their path under service/, dotted
(`core.provisioning`, `config`), so the table also says which package each module is in."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "service"


def layers() -> list[tuple[str, set[str]]]:
    """(layer, modules) from the table, lowest layer first."""
    page = (REPO / "docs" / "architecture.md").read_text()
    section = page.split("## Layers of `service/`", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    return [
        (cells[1].strip(), set(re.findall(r"`([\w.]+)`", cells[2])))
        for cells in (row.split("|") for row in rows)
    ]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SERVICE).with_suffix("").parts)


MODULES = {module_name(path): path for path in SERVICE.rglob("*.py") if path.stem != "__init__"}


def imports_of(path: Path) -> set[str]:
    """The service modules a module imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "service" or node.module.startswith("service."):
                package = node.module.removeprefix("service").lstrip(".")
                for alias in node.names:  # `from service.core import quota` names a module
                    inner = f"{package}.{alias.name}".lstrip(".")
                    found.add(inner if inner in MODULES else package)
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.removeprefix("service.")
                for alias in node.names
                if alias.name.startswith("service.")
            )
    return found - {module_name(path)}


def test_every_module_is_in_exactly_one_layer():
    placed = [module for _, modules in layers() for module in modules]
    assert sorted(placed) == sorted(set(placed)), "a module is in two layers"
    assert set(placed) == set(MODULES)


def test_every_import_names_a_module():
    unknown = {
        f"{module} imports {used}"
        for module, path in MODULES.items()
        for used in imports_of(path)
        if used not in MODULES
    }
    assert not unknown


def test_no_module_imports_from_a_lower_layer():
    rank = {module: index for index, (_, modules) in enumerate(layers()) for module in modules}
    names = [name for name, _ in layers()]
    wrong = [
        f"{module} ({names[rank[module]]}) imports {used} ({names[rank[used]]})"
        for module, path in MODULES.items()
        for used in imports_of(path)
        if rank[used] > rank[module]
    ]
    assert not wrong


def test_imports_form_no_cycle():
    graph = {module: imports_of(path) for module, path in MODULES.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        pytest.fail(f"import cycle: {cycle.args[1]}")
