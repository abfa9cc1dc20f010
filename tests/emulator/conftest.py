"""Fixtures for the emulator's own tests: one real emulator process per module.

They deliberately override the shared `setup`, `emulator_process` and `emulator` fixtures
of tests/support/fixtures.py (one emulator per session, for the service's tests) with
module-scoped fresh ones: each module gets its own emulator, and each test starts from a
clean one (meetings, stats, faults and rate limits reset, the two users' access policies
as configured). Graph calls go through tests.support.graph_client.GraphClient, which checks
every body against the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.emulator import EmulatorHandle, EmulatorSetup, default_config, start_emulator
from tests.support.graph_client import GraphClient, msal_app


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> EmulatorSetup:
    return default_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def emulator_process(
    tmp_path_factory: pytest.TempPathFactory, setup: EmulatorSetup
) -> Iterator[EmulatorHandle]:
    with start_emulator(tmp_path_factory.mktemp("emulator"), setup.config) as handle:
        yield handle


@pytest.fixture
def emulator(emulator_process: EmulatorHandle, setup: EmulatorSetup) -> EmulatorHandle:
    emulator_process.reset()
    for user, policy in ((setup.user_with_policy, True), (setup.user_without_policy, False)):
        emulator_process.set_user(setup.tenant_id, user, access_policy=policy)
    return emulator_process


@pytest.fixture
def make_msal(emulator: EmulatorHandle, setup: EmulatorSetup) -> Any:
    """make_msal(credential, client_id=setup.client_id) -> ConfidentialClientApplication."""

    def make(credential: Any, client_id: str | None = None) -> Any:
        return msal_app(emulator, setup.tenant_id, client_id or setup.client_id, credential)

    return make


@pytest.fixture
def token(emulator: EmulatorHandle, setup: EmulatorSetup) -> str:
    return emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)


@pytest.fixture
def graph(emulator: EmulatorHandle, token: str) -> Iterator[GraphClient]:
    client = GraphClient(emulator, token)
    yield client
    client.http.close()
