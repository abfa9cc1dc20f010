"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest

from tests.deploy.tooling import DEPLOY, OVERLAYS, Manifest, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Both overlays, rendered with kustomize once per session."""
    return {overlay: render(DEPLOY / "overlays" / overlay) for overlay in OVERLAYS}
