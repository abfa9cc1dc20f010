"""Each credential kind through real MSAL, token refresh, Graph beta, and Redis outages."""

from __future__ import annotations

import pytest
from local_stack.redis_server import RedisServer

from tests.support.contract import validator
from tests.support.factories import booking
from tests.support.stack import Client

pytestmark = pytest.mark.e2e


def token_requests(emulator, kind: str) -> int:
    return sum(1 for t in emulator.stats()["tokenRequests"] if t["credentialKind"] == kind)


@pytest.mark.parametrize("kind", ["secret", "certificate", "federated"])
def test_each_credential_kind_gets_a_token_and_a_meeting(
    start_service, emulator, callers, organizer, kind
):
    before = token_requests(emulator, kind)
    service = start_service(credential=kind)
    client = Client(service.url, callers["eu"].key)
    assert client.post(booking(organizer)).status_code == 201
    assert client.post(booking(organizer)).status_code == 201
    granted = [
        t
        for t in emulator.stats()["tokenRequests"][before:]
        if t["credentialKind"] == kind and t["status"] == 200
    ]
    assert granted, f"no {kind} token request reached the emulator"
    assert all(t["scope"] == "https://graph.microsoft.com/.default" for t in granted)


def test_tokens_are_cached_per_process(start_service, emulator, callers, organizer):
    service = start_service(credential="certificate", workers=1)
    client = Client(service.url, callers["eu"].key)
    before = token_requests(emulator, "certificate")
    for _ in range(5):
        assert client.post(booking(organizer)).status_code == 201
    assert token_requests(emulator, "certificate") - before == 1


def test_a_graph_401_drops_the_cached_token_and_retries_once(
    start_service, own_emulator, callers, organizer
):
    emulator = own_emulator  # revoking tokens cannot be undone on the shared emulator
    service = start_service(workers=1, emulator=emulator)
    client = Client(service.url, callers["eu"].key)
    assert client.post(booking(organizer)).status_code == 201
    before = token_requests(emulator, "secret")

    emulator.revoke_tokens()  # the cached token is now refused by Graph
    response = client.post(booking(organizer))
    assert response.status_code == 201, response.text
    assert token_requests(emulator, "secret") - before == 1
    statuses = [r["status"] for r in emulator.requests_for(response.json()["externalId"])]
    assert statuses == [401, 201]


def test_graph_beta_accepts_chat_info_and_uses_the_beta_path(
    start_service, emulator, callers, organizer
):
    service = start_service(GRAPH_API_VERSION="beta")
    chat = {"threadId": "19:meeting_abc@thread.v2", "messageId": "0", "replyChainMessageId": "0"}
    response = Client(service.url, callers["eu"].key).post(booking(organizer, chatInfo=chat))
    assert response.status_code == 201, response.text
    sent = emulator.requests_for(response.json()["externalId"])
    assert [r["version"] for r in sent] == ["beta"]
    assert sent[0]["body"]["chatInfo"] == chat
    validator("createOrGetRequestBody", "beta").validate(sent[0]["body"])
    assert response.json()["onlineMeeting"]["chatInfo"]["threadId"] == chat["threadId"]


def test_without_redis_posts_still_make_exactly_one_meeting(
    tmp_path, start_service, emulator, callers, organizer
):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = start_service(REDIS_URL=redis_server.url)
    client = Client(service.url, callers["eu"].key)
    body = booking(organizer)
    try:
        redis_server.stop()
        first = client.post(body)
        assert first.status_code == 201, first.text
        second = client.post(body)
        assert second.status_code == 200
        assert "Idempotent-Replayed" not in second.headers  # nothing can be replayed
        assert second.json()["meetingId"] == first.json()["meetingId"]

        unknown = client.get(body["bookingId"])
        assert unknown.status_code == 503
        assert unknown.headers["Retry-After"]
        assert unknown.json()["type"].endswith("store-unavailable")

        redis_server.start()  # same port: the service reconnects on its own
        third = client.post(body)
        assert third.status_code == 200
        fourth = client.post(body)
        assert fourth.headers.get("Idempotent-Replayed") == "true"
        assert client.get(body["bookingId"]).status_code == 200
    finally:
        redis_server.stop()
    assert emulator.meetings_for(first.json()["externalId"]) == {"created": 1, "calls": 3}
