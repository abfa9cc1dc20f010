"""Fixtures for the emulator's own tests: one real emulator process per module.

Each test starts from a clean emulator (meetings, stats, faults and rate limits reset).
Every Graph response goes through GraphClient, which validates its body against the
contract (and every request body it sends, unless told the body is meant to be invalid),
so no test can forget to.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.contract import validator  # noqa: E402
from tests.support.emulator import (  # noqa: E402
    EmulatorHandle,
    EmulatorSetup,
    TrustingSession,
    default_config,
    start_emulator,
)


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


def msal_app(
    emulator: EmulatorHandle, tenant_id: str, client_id: str, credential: Any
) -> msal.ConfidentialClientApplication:
    """MSAL exactly as the service builds it."""
    return msal.ConfidentialClientApplication(
        client_id,
        authority=f"{emulator.authority_host}/{tenant_id}",
        client_credential=credential,
        instance_discovery=False,
        http_client=TrustingSession(emulator.ca_bundle),
    )


@pytest.fixture
def make_msal(emulator: EmulatorHandle, setup: EmulatorSetup) -> Any:
    """make_msal(credential, client_id=setup.client_id) -> ConfidentialClientApplication."""

    def make(credential: Any, client_id: str | None = None) -> Any:
        return msal_app(emulator, setup.tenant_id, client_id or setup.client_id, credential)

    return make


class GraphClient:
    """Calls the emulated Graph and checks every response body against the contract."""

    def __init__(self, emulator: EmulatorHandle, token: str) -> None:
        self.emulator = emulator
        self.token = token
        self.http = emulator.session()

    def create_or_get(
        self,
        user_id: str,
        body: Any,
        version: str = "v1.0",
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        valid_request: bool = True,
    ) -> requests.Response:
        if valid_request:
            validator("createOrGetRequestBody", version).validate(body)
        response = self.http.post(
            f"{self.emulator.base_url}/{version}/users/{user_id}/onlineMeetings/createOrGet",
            json=body,
            headers=self._headers(token, headers),
            timeout=30,
        )
        return self.checked(response, version)

    def get_meeting(
        self, user_id: str, meeting_id: str, version: str = "v1.0", *, token: str | None = None
    ) -> requests.Response:
        response = self.http.get(
            self._meeting_url(user_id, meeting_id, version),
            headers=self._headers(token, None),
            timeout=30,
        )
        return self.checked(response, version)

    def update_meeting(
        self,
        user_id: str,
        meeting_id: str,
        body: Any,
        version: str = "v1.0",
        *,
        token: str | None = None,
        valid_request: bool = True,
    ) -> requests.Response:
        """PATCH; the body is checked against the contract's PATCH schema first."""
        if valid_request:
            validator("onlineMeeting", version).validate(body)
        response = self.http.patch(
            self._meeting_url(user_id, meeting_id, version),
            json=body,
            headers=self._headers(token, None),
            timeout=30,
        )
        return self.checked(response, version)

    def delete_meeting(
        self, user_id: str, meeting_id: str, version: str = "v1.0", *, token: str | None = None
    ) -> requests.Response:
        response = self.http.delete(
            self._meeting_url(user_id, meeting_id, version),
            headers=self._headers(token, None),
            timeout=30,
        )
        return self.checked(response, version)

    def _meeting_url(self, user_id: str, meeting_id: str, version: str) -> str:
        return f"{self.emulator.base_url}/{version}/users/{user_id}/onlineMeetings/{meeting_id}"

    def _headers(self, token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        bearer = self.token if token is None else token
        auth = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return {**auth, **(extra or {})}

    @staticmethod
    def checked(response: requests.Response, version: str = "v1.0") -> requests.Response:
        """Validate the body and the headers every Graph response carries."""
        for header in ("request-id", "client-request-id", "x-ms-ags-diagnostic", "Date"):
            assert header in response.headers, f"missing {header}"
        if response.status_code == 204:
            assert response.content == b"" and "Content-Type" not in response.headers
            return response
        entrypoint = "onlineMeeting" if response.status_code < 400 else "errorBody"
        validator(entrypoint, version).validate(response.json())
        if response.status_code >= 400:
            inner = response.json()["error"]["innerError"]
            assert inner["request-id"] == response.headers["request-id"]
            assert inner["client-request-id"] == response.headers["client-request-id"]
        return response


@pytest.fixture
def token(emulator: EmulatorHandle, setup: EmulatorSetup) -> str:
    return emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)


@pytest.fixture
def graph(emulator: EmulatorHandle, token: str) -> Iterator[GraphClient]:
    client = GraphClient(emulator, token)
    yield client
    client.http.close()
