"""Clients of the emulator's two faces for its tests: MSAL as the service builds it (Entra
ID), and `GraphClient`, which checks every Graph response body against the contract (and
every request body it sends, unless told the body is meant to be invalid), so no test can
forget to."""

from __future__ import annotations

from typing import Any

import msal
import requests

from tests.support.contract import validator
from tests.support.emulator import EmulatorHandle


def msal_app(
    emulator: EmulatorHandle, tenant_id: str, client_id: str, credential: Any
) -> msal.ConfidentialClientApplication:
    """MSAL exactly as the service builds it."""
    return msal.ConfidentialClientApplication(
        client_id,
        authority=f"{emulator.authority_host}/{tenant_id}",
        client_credential=credential,
        instance_discovery=False,
        http_client=emulator.session(),
    )


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
        url = f"{self.emulator.base_url}/{version}/users/{user_id}/onlineMeetings/createOrGet"
        return self._send("POST", url, version, token, headers, body)

    def get_meeting(
        self,
        user_id: str,
        meeting_id: str,
        version: str = "v1.0",
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        url = self._meeting_url(user_id, meeting_id, version)
        return self._send("GET", url, version, token, headers)

    def update_meeting(
        self,
        user_id: str,
        meeting_id: str,
        body: Any,
        version: str = "v1.0",
        *,
        token: str | None = None,
        valid_request: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """PATCH; the body is checked against the contract's PATCH schema first."""
        if valid_request:
            validator("onlineMeeting", version).validate(body)
        url = self._meeting_url(user_id, meeting_id, version)
        return self._send("PATCH", url, version, token, headers, body)

    def delete_meeting(
        self, user_id: str, meeting_id: str, version: str = "v1.0", *, token: str | None = None
    ) -> requests.Response:
        url = self._meeting_url(user_id, meeting_id, version)
        return self._send("DELETE", url, version, token)

    def _send(
        self,
        method: str,
        url: str,
        version: str,
        token: str | None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> requests.Response:
        """One Graph request (a JSON body only when given), its answer checked."""
        json_body = {} if body is None else {"json": body}
        response = self.http.request(
            method, url, headers=self._headers(token, headers), timeout=30, **json_body
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
