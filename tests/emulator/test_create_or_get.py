"""createOrGet and GET onlineMeeting as the contract and the docs describe them.

Every response body here is validated against the contract by the GraphClient fixture.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.contract import document
from tests.support.emulator import EmulatorHandle, EmulatorSetup

pytestmark = pytest.mark.emulator

VERSIONS = ["v1.0", "beta"]


def body(**fields: Any) -> dict[str, Any]:
    return {"externalId": str(uuid.uuid4()), **fields}


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value[:26] + value[27:])  # drop the 7th digit


@pytest.mark.parametrize("version", VERSIONS)
def test_created_then_the_same_meeting_returned_unchanged(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle, version: str
) -> None:
    first_body = body(subject="Design review")
    created = graph.create_or_get(setup.user_with_policy, first_body, version)
    again = graph.create_or_get(
        setup.user_with_policy,
        {**first_body, "subject": "Something else", "startDateTime": "2030-01-01T00:00:00Z"},
        version,
    )

    assert created.status_code == 201 and again.status_code == 200
    assert again.json() == created.json()  # other fields are not applied to an existing one
    meeting = created.json()
    assert meeting["subject"] == "Design review"
    assert meeting["externalId"] == first_body["externalId"]
    assert meeting["joinWebUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    organizer = meeting["participants"]["organizer"]
    assert organizer["role"] == "presenter" and organizer["upn"] == "ada@contoso.example"
    assert organizer["identity"]["user"] == {
        "id": setup.user_with_policy,
        "displayName": "Ada Organizer",
        "tenantId": setup.tenant_id,
        "identityProvider": "AAD",
    }
    [row] = emulator.stats()["meetings"]
    assert row == {
        "tenantId": setup.tenant_id,
        "userId": setup.user_with_policy,
        "externalId": first_body["externalId"],
        "meetingId": meeting["id"],
        "created": 1,
        "returned": 1,
        "patched": 0,
        "deleted": False,
    }


def test_another_external_id_is_another_meeting(graph: Any, setup: EmulatorSetup) -> None:
    one = graph.create_or_get(setup.user_with_policy, body())
    two = graph.create_or_get(setup.user_with_policy, body())

    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


def test_the_same_external_id_for_another_user_is_another_meeting(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    colleague = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, colleague, access_policy=True)
    shared = body()

    mine = graph.create_or_get(setup.user_with_policy, shared)
    theirs = graph.create_or_get(colleague, shared)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["participants"]["organizer"]["identity"]["user"]["id"] == colleague


def test_user_ids_are_case_insensitive(graph: Any, setup: EmulatorSetup) -> None:
    same = body()
    lower = graph.create_or_get(setup.user_with_policy, same)
    upper = graph.create_or_get(setup.user_with_policy.upper(), same)

    assert (lower.status_code, upper.status_code) == (201, 200)


def test_no_times_means_now_for_one_hour(graph: Any, setup: EmulatorSetup) -> None:
    before = datetime.now(UTC)
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()

    start, end = parse(meeting["startDateTime"]), parse(meeting["endDateTime"])
    assert before - timedelta(seconds=1) <= start <= datetime.now(UTC)
    assert end - start == timedelta(hours=1)


def test_start_only_ends_an_hour_later_and_times_come_back_in_utc(
    graph: Any, setup: EmulatorSetup
) -> None:
    meeting = graph.create_or_get(
        setup.user_with_policy, body(startDateTime="2026-11-23T10:00:00.1234567+01:00")
    ).json()

    assert meeting["startDateTime"] == "2026-11-23T09:00:00.1234567Z"
    assert meeting["endDateTime"] == "2026-11-23T10:00:00.1234567Z"


def test_start_and_end_are_kept(graph: Any, setup: EmulatorSetup) -> None:
    meeting = graph.create_or_get(
        setup.user_with_policy,
        body(startDateTime="2026-11-23T09:00:00Z", endDateTime="2026-11-23T09:30:00Z"),
    ).json()

    assert (meeting["startDateTime"], meeting["endDateTime"]) == (
        "2026-11-23T09:00:00.0000000Z",
        "2026-11-23T09:30:00.0000000Z",
    )


@pytest.mark.parametrize(
    ("times", "words"),
    [
        ({"endDateTime": "2026-11-23T09:30:00Z"}, "startDateTime is required"),
        (
            {"startDateTime": "2026-11-23T10:00:00Z", "endDateTime": "2026-11-23T09:00:00Z"},
            "earlier than startDateTime",
        ),
    ],
    ids=["end-without-start", "end-before-start"],
)
def test_bad_times_are_400(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle, times: Any, words: str
) -> None:
    response = graph.create_or_get(setup.user_with_policy, body(**times))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert words in response.json()["error"]["message"]
    assert emulator.stats()["meetings"] == []


@pytest.mark.parametrize(
    ("bad_body", "words"),
    [
        ({"subject": "no externalId"}, "'externalId' is a required property"),
        (body(startDateTime="23/11/2026 09:00"), "startDateTime"),
        (body(participants={"attendees": [{"upn": "a@b.c", "role": "boss"}]}), "'boss'"),
        ([{"externalId": "x"}], "is not of type 'object'"),
    ],
    ids=["missing-externalId", "bad-date", "bad-role", "not-an-object"],
)
def test_a_body_outside_the_contract_is_400_naming_the_problem(
    graph: Any, setup: EmulatorSetup, bad_body: Any, words: str
) -> None:
    response = graph.create_or_get(setup.user_with_policy, bad_body, valid_request=False)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert words in response.json()["error"]["message"]


def test_a_body_that_is_not_json_is_400(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    response = graph.http.post(
        f"{emulator.base_url}/v1.0/users/{setup.user_with_policy}/onlineMeetings/createOrGet",
        data=b"externalId=1",
        headers={"Authorization": f"Bearer {graph.token}", "Content-Type": "text/plain"},
        timeout=10,
    )

    graph.checked(response)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("version", "example"),
    [("v1.0", "seedRequest"), ("beta", "seedRequest"), ("beta", "seedRequestChannel")],
)
def test_the_documented_request_examples_work(
    graph: Any, setup: EmulatorSetup, version: str, example: str
) -> None:
    request = copy.deepcopy(document(version)["components"]["examples"][example]["value"])
    request["externalId"] = str(uuid.uuid4())

    meeting = graph.create_or_get(setup.user_with_policy, request, version).json()

    assert meeting["startDateTime"] == "2020-02-06T01:49:21.3524945Z"
    assert meeting["endDateTime"] == "2020-02-06T02:19:21.3524945Z"
    [attendee] = meeting["participants"]["attendees"]
    assert attendee["upn"] == "test1@contoso.com" and attendee["role"] == "attendee"
    if "chatInfo" in request:
        assert meeting["chatInfo"]["threadId"] == request["chatInfo"]["threadId"]


def test_no_access_policy_is_403_general_until_granted(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    request = body()
    refused = graph.create_or_get(setup.user_without_policy, request)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "General"
    assert refused.json()["error"]["message"] == "No application access policy found for this app."

    emulator.set_user(setup.tenant_id, setup.user_without_policy, access_policy=True)
    assert graph.create_or_get(setup.user_without_policy, request).status_code == 201


@pytest.mark.parametrize("user", ["unknown-guid", "ada@contoso.example"])
def test_a_user_graph_cannot_resolve_is_404(graph: Any, setup: EmulatorSetup, user: str) -> None:
    user_id = setup.unknown_user if user == "unknown-guid" else user

    response = graph.create_or_get(user_id, body())

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ErrorItemNotFound"


@pytest.mark.parametrize("bearer", ["", "not-a-jwt"])
def test_a_missing_or_malformed_token_is_401(graph: Any, setup: EmulatorSetup, bearer: str) -> None:
    response = graph.create_or_get(setup.user_with_policy, body(), token=bearer)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_revoked_tokens_are_401_and_new_ones_work(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    assert graph.create_or_get(setup.user_with_policy, body()).status_code == 201

    emulator.revoke_tokens()
    revoked = graph.create_or_get(setup.user_with_policy, body())
    fresh = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)
    renewed = graph.create_or_get(setup.user_with_policy, body(), token=fresh)

    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert renewed.status_code == 201


@pytest.mark.parametrize("version", VERSIONS)
def test_get_meeting_returns_it_or_404(graph: Any, setup: EmulatorSetup, version: str) -> None:
    created = graph.create_or_get(setup.user_with_policy, body(), version).json()

    found = graph.get_meeting(setup.user_with_policy, created["id"], version)
    missing = graph.get_meeting(setup.user_with_policy, "MSpub3RoZXJl", version)

    assert found.status_code == 200
    assert {k: v for k, v in found.json().items() if k != "@odata.context"} == {
        k: v for k, v in created.items() if k != "@odata.context"
    }
    assert missing.status_code == 404


def test_client_request_id_is_echoed_and_request_id_generated(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    mine = "5a3c1b7e-0000-4000-8000-00000000abcd"
    answered = graph.create_or_get(
        setup.user_with_policy, body(), headers={"client-request-id": mine}
    )
    failed = graph.create_or_get(setup.user_without_policy, body())

    assert answered.headers["client-request-id"] == mine
    assert answered.headers["request-id"] != mine
    assert failed.headers["client-request-id"] == failed.headers["request-id"]
    recorded = emulator.stats()["requests"]
    assert [r["status"] for r in recorded] == [201, 403]
    assert recorded[0]["clientRequestId"] == mine
    assert recorded[0]["requestId"] == answered.headers["request-id"]
    assert recorded[0]["version"] == "v1.0"
    assert recorded[1]["userId"] == setup.user_without_policy


def test_meetings_for_and_requests_for_helpers(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    request = body(subject="helpers")
    graph.create_or_get(setup.user_with_policy, request)
    graph.create_or_get(setup.user_with_policy, request)

    assert emulator.meetings_for(request["externalId"]) == {"created": 1, "calls": 2}
    assert [r["body"] for r in emulator.requests_for(request["externalId"])] == [request, request]
    assert emulator.meetings_for("never-used") == {"created": 0, "calls": 0}
