"""For every suite: the shared fixtures of the real stack (tests/support/fixtures.py), and
the rule that each test module carries its folder's marker.

Each folder of tests/ is one suite with one marker, declared in pyproject.toml and set in
each module with `pytestmark = pytest.mark.<folder>`, so `pytest -m unit`, `-m "not faults"`
and the like select exactly what their names say. Collection fails when a module has no
marker of a suite, another suite's, or more than one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

TESTS = Path(__file__).parent
# Folder of tests/ -> the marker of its suite.
SUITES = {
    "unit": "unit",
    "integration": "integration",
    "emulator": "emulator",
    "e2e": "e2e",
    "faults": "faults",
    "deploy": "deploy",
}


def module_marks(module: object) -> set[str]:
    """The names of the marks a module sets with `pytestmark` (one mark or a list)."""
    marks = getattr(module, "pytestmark", [])
    return {mark.name for mark in (marks if isinstance(marks, list) else [marks])}


def marker_problem(item: pytest.Item) -> str | None:
    """Why a test's suite marker is wrong, or None when it is its folder's, set by its
    module's `pytestmark` and by nothing else."""
    path = item.path.relative_to(TESTS)
    expected = SUITES.get(path.parts[0]) if len(path.parts) > 1 else None
    if expected is None:
        return f"tests/{path}: not in a suite's folder ({', '.join(sorted(SUITES))})"
    module = item.getparent(pytest.Module)
    on_module = module_marks(module.obj if module else None) & set(SUITES.values())
    on_test = {mark.name for mark in item.iter_markers()} & set(SUITES.values())
    if on_module != {expected} or on_test != {expected}:
        shown = ", ".join(sorted(on_module | on_test)) or "none"
        return (
            f"tests/{path}: needs `pytestmark = pytest.mark.{expected}` and no other suite's"
            f" marker (has: {shown})"
        )
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything: every test is checked
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = {problem for item in items if (problem := marker_problem(item))}
    if problems:
        raise pytest.UsageError(
            "each test module must carry its folder's marker:\n" + "\n".join(sorted(problems))
        )
