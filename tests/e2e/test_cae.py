"""Continuous Access Evaluation on the Graph side: the service declares cp1 to MSAL, so a
revoked token comes back from Graph (the emulator) as a 401 with a claims challenge, and the
service answers it with a token for those claims (MSAL's claims_challenge), once."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.stack import Client

pytestmark = pytest.mark.e2e


def booking(organizer: str) -> dict[str, str]:
    return {
        "bookingId": f"cae-{uuid.uuid4()}",
        "organizerId": organizer,
        "subject": "CAE",
        "startDateTime": "2030-01-01T10:00:00Z",
        "endDateTime": "2030-01-01T11:00:00Z",
    }


def test_a_claims_challenge_is_answered_once_with_a_token_for_those_claims(
    start_service, own_emulator, callers, organizer
) -> None:
    service = start_service(workers=1, emulator=own_emulator)
    client = Client(service.url, callers["eu"].key)
    assert client.post(booking(organizer)).status_code == 201
    tokens = own_emulator.stats()["tokenRequests"]
    # MSAL sends the capability as the claims parameter of every token request.
    assert json.loads(tokens[-1]["claims"]) == {"access_token": {"xms_cc": {"values": ["cp1"]}}}

    own_emulator.revoke_tokens()  # Graph now answers the cached token with a claims challenge
    answer = client.post(booking(organizer))
    assert answer.status_code == 201, answer.text
    external_id = answer.json()["externalId"]
    assert [r["status"] for r in own_emulator.requests_for(external_id)] == [401, 201]
    after = own_emulator.stats()["tokenRequests"][len(tokens) :]
    assert len(after) == 1 and after[0]["status"] == 200
    asked = json.loads(after[0]["claims"])["access_token"]
    assert asked["nbf"]["essential"] is True  # the challenge's claims ...
    assert asked["xms_cc"] == {"values": ["cp1"]}  # ... merged with the capability
    metrics = client.session.get(f"{service.url}/metrics").text
    assert "mps_graph_claims_challenges_total 1.0" in metrics
