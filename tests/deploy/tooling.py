"""Helpers of the deployment tests: the tools of `make tools`, the overlays rendered with
kustomize (`kubectl kustomize`), and the environment a container would get."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
TOOLS_BIN = REPO / ".venv-tools" / "bin"
TOOL_TIMEOUT = 120

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """The path of one of `make tools`' programs; a clear failure when it is missing."""
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (`make test` does)", pytrace=False)
    return str(path)


def run_tool(name: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )


def render(overlay: Path) -> list[Manifest]:
    """`kubectl kustomize <overlay>`, parsed."""
    result = run_tool("kubectl", "kustomize", str(overlay))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one resource of this kind (and name; a generated ConfigMap's hash suffix aside)."""
    found = [
        doc
        for doc in docs
        if doc["kind"] == kind
        and (
            name is None
            or doc["metadata"]["name"] == name
            or (
                kind == "ConfigMap"
                and re.fullmatch(rf"{name}-[a-z0-9]{{10}}", doc["metadata"]["name"])
            )
        )
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(
    docs: list[Manifest],
    kind: str = "Deployment",
    name: str = "meeting-provisioning",
    container_name: str | None = None,
):
    """One container of a workload: the one named like the workload (or `container_name`),
    else the only one."""
    containers = find(docs, kind, name)["spec"]["template"]["spec"]["containers"]
    wanted = container_name or name
    named = [c for c in containers if c["name"] == wanted]
    if named:
        return named[0]
    assert len(containers) == 1 and container_name is None, [c["name"] for c in containers]
    return containers[0]


PROXY = "proxy"  # the Deployment's nginx sidecar


def proxy_container(docs: list[Manifest]):
    return container(docs, container_name=PROXY)


SecretLookup = Callable[[str, str], str]


def container_env(
    docs: list[Manifest], secret: SecretLookup, container_name: str | None = None
) -> dict[str, str]:
    """The environment Kubernetes gives the service's container (or the Deployment's
    container `container_name`): envFrom ConfigMaps, then env entries in order, with
    $(VAR) references to earlier variables expanded as the kubelet does. `secret(name,
    key)` stands in for secretKeyRef values."""
    spec = container(docs, container_name=container_name)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        config_map = find_by_name(docs, "ConfigMap", source["configMapRef"]["name"])
        env.update({key: str(value) for key, value in config_map["data"].items()})
    for entry in spec.get("env", []):
        if "value" in entry:
            value = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                entry["value"],
            )
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secret(ref["name"], ref["key"])
        env[entry["name"]] = value
    return env


def find_by_name(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name} is referenced but not rendered"
    return found[0]
