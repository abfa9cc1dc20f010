"""What uv.lock says a set of installs must hold: the packages that a project (with no
dependency group) needs on this interpreter, each at its locked version, read from the lock
itself rather than from uv's own export, so the image test checks the lock and not uv."""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

from tests.support.stack import REPO

LOCK = REPO / "uv.lock"
PROJECT = "meeting-provisioning"


def runtime_versions(
    markers: dict[str, str] | None = None, lock: Path = LOCK, root: str = PROJECT
) -> dict[str, str]:
    """{canonical name: version} of `root` and everything its dependencies pull in on the
    interpreter that `markers` describe (packaging's default_environment(); this one's by
    default).

    uv writes its dependency groups and their conflicts into markers as `extra == 'group-…'`;
    evaluated with no extra, those choose the branch of an install without any group."""
    packages: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for package in tomllib.loads(lock.read_text())["package"]:
        packages[package["name"]].append(package)
    environment = {**(markers or default_environment()), "extra": ""}
    versions: dict[str, str] = {}
    # (name, "") stands for a package's own dependencies, (name, extra) for one extra's.
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[str, str | None, str]] = [(root, None, "")]
    while pending:
        name, version, extra = pending.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        candidates = [p for p in packages[name] if version in (None, p["version"])]
        assert len(candidates) == 1, f"uv.lock: {name} {version or ''} is ambiguous or missing"
        [package] = candidates
        locked = versions.setdefault(name, package["version"])
        assert locked == package["version"], f"uv.lock: {name} at {locked} and {package['version']}"
        if extra:
            dependencies = package.get("optional-dependencies", {}).get(extra, [])
        else:
            dependencies = package.get("dependencies", [])
        for dependency in dependencies:
            marker = dependency.get("marker")
            if marker is not None and not Marker(marker).evaluate(environment):
                continue
            for wanted in ("", *dependency.get("extra", ())):
                pending.append((dependency["name"], dependency.get("version"), wanted))
    return {canonicalize_name(name): version for name, version in versions.items()}
