"""The create path's yardstick: what a caller would pay calling Graph itself, with no
service in between. A keep-alive session trusting the emulator's CA, with a token acquired
once by MSAL (client credentials, the service's own app and secret), POSTing createOrGet."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.emulator import EmulatorHandle, EmulatorSetup
from tests.support.graph_client import msal_app

SUBJECT = "Bench meeting"


class DirectGraphClient:
    def __init__(self, emulator: EmulatorHandle, setup: EmulatorSetup) -> None:
        app = msal_app(emulator, setup.tenant_id, setup.client_id, setup.client_secret)
        result = app.acquire_token_for_client(scopes=[f"{emulator.graph_audience}/.default"])
        if "access_token" not in result:
            raise RuntimeError(f"no token for the direct client: {result}")
        self.base_url = emulator.base_url
        self.http = emulator.session()
        self.http.headers["Authorization"] = f"Bearer {result['access_token']}"

    def create(self, organizer_id: str) -> dict[str, Any]:
        """A new meeting (a new externalId each time), as the service asks for a new booking."""
        body = {"externalId": str(uuid.uuid4()), "subject": SUBJECT}
        response = self.http.post(
            f"{self.base_url}/v1.0/users/{organizer_id}/onlineMeetings/createOrGet",
            json=body,
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"createOrGet answered {response.status_code}: {response.text}")
        meeting: dict[str, Any] = response.json()
        return meeting

    def close(self) -> None:
        self.http.close()
