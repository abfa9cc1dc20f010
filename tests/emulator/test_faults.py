"""Fault injection, rate limiting and concurrency, through the admin API.

createOrGet first, then the operations on one meeting (GET, PATCH, DELETE).
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from email.utils import formatdate
from typing import Any

import msal
import pytest
import requests

from tests.support.emulator import EmulatorHandle, EmulatorSetup

pytestmark = pytest.mark.emulator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


def body() -> dict[str, Any]:
    return {"externalId": str(uuid.uuid4())}


@pytest.mark.parametrize("seconds", ["2", "2.128"])  # the throttling docs show both forms
def test_429_with_retry_after_seconds_then_served(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle, seconds: str
) -> None:
    emulator.add_fault(target="createOrGet", status=429, retryAfter=seconds, count=1)

    throttled = graph.create_or_get(setup.user_with_policy, body())
    served = graph.create_or_get(setup.user_with_policy, body())

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == seconds
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert throttled.json()["error"]["message"] == "Please retry again later."
    assert served.status_code == 201
    assert emulator.stats()["calls"]["createOrGet"] == {"429": 1, "201": 1}


def test_429_with_an_http_date_retry_after(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    when = formatdate(time.time() + 5, usegmt=True)  # e.g. "Sat, 21 Nov 2026 07:40:05 GMT"
    emulator.add_fault(target="createOrGet", status=429, retryAfter=when, count=1)

    throttled = graph.create_or_get(setup.user_with_policy, body())

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == when


def test_503_for_count_requests_in_the_order_added(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(target="createOrGet", status=500, count=1)
    emulator.add_fault(target="graph", status=503, retryAfter="1", count=2)

    statuses = [graph.create_or_get(setup.user_with_policy, body()).status_code for _ in range(4)]

    assert statuses == [500, 503, 503, 201]


def test_a_fault_without_count_applies_until_cleared(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(target="any", status=502, errorCode="BadGateway", message="upstream")

    first = graph.create_or_get(setup.user_with_policy, body())
    second = graph.create_or_get(setup.user_with_policy, body())
    emulator.clear_faults()
    third = graph.create_or_get(setup.user_with_policy, body())

    assert first.status_code == second.status_code == 502
    assert first.json()["error"] == {
        **first.json()["error"],
        "code": "BadGateway",
        "message": "upstream",
    }
    assert third.status_code == 201


def test_latency_only_delays_then_serves(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(target="createOrGet", latencyMs=300, count=1)

    started = time.monotonic()
    slow = graph.create_or_get(setup.user_with_policy, body())
    elapsed = time.monotonic() - started

    assert slow.status_code == 201
    assert elapsed >= 0.3


def test_reset_drops_the_connection_without_a_response(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(target="createOrGet", reset=True, count=1)

    with pytest.raises(requests.ConnectionError):
        graph.create_or_get(setup.user_with_policy, body())
    assert graph.create_or_get(setup.user_with_policy, body()).status_code == 201
    stats = emulator.stats()
    assert stats["calls"]["createOrGet"] == {"reset": 1, "201": 1}
    assert stats["meetings"][0]["created"] == 1  # the reset request created nothing


def test_after_processing_the_meeting_exists_though_the_answer_was_lost(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    request = body()
    emulator.add_fault(target="createOrGet", status=504, afterProcessing=True, count=1)
    emulator.add_fault(target="createOrGet", reset=True, afterProcessing=True, count=1)

    lost = graph.create_or_get(setup.user_with_policy, request)
    with pytest.raises(requests.ConnectionError):
        graph.create_or_get(setup.user_with_policy, request)
    retried = graph.create_or_get(setup.user_with_policy, request)

    assert lost.status_code == 504
    assert retried.status_code == 200
    assert emulator.meetings_for(request["externalId"]) == {"created": 1, "calls": 3}


def test_an_organizer_filter_spares_other_organizers(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    other = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, other, access_policy=True)
    emulator.add_fault(target="createOrGet", status=503, organizerId=setup.user_with_policy.upper())

    assert graph.create_or_get(other, body()).status_code == 201
    assert graph.create_or_get(setup.user_with_policy, body()).status_code == 503


def test_graph_target_covers_get_meeting(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target="graph", status=503, count=1)

    assert graph.get_meeting(setup.user_with_policy, meeting["id"]).status_code == 503
    assert emulator.stats()["calls"]["getMeeting"] == {"503": 1}


def test_token_faults_answer_in_entra_shape(
    emulator: EmulatorHandle, setup: EmulatorSetup, make_msal: Any
) -> None:
    emulator.add_fault(target="token", status=429, retryAfter="3", count=1)
    emulator.add_fault(target="token", status=503, count=1)

    throttled = make_msal(setup.client_secret).acquire_token_for_client(GRAPH_SCOPE)
    # MSAL raises for a 5xx from the token endpoint instead of returning a dict.
    with pytest.raises(msal.exceptions.MsalServiceError):
        make_msal(setup.client_secret).acquire_token_for_client(GRAPH_SCOPE)
    served = make_msal(setup.client_secret).acquire_token_for_client(GRAPH_SCOPE)

    assert throttled["error"] == "temporarily_unavailable"
    assert throttled["error_description"].startswith("AADSTS90055:")
    assert "access_token" in served
    assert [r["status"] for r in emulator.stats()["tokenRequests"]] == [429, 503, 200]


def test_a_discovery_fault_stops_msal_before_any_token_request(
    emulator: EmulatorHandle, setup: EmulatorSetup, make_msal: Any
) -> None:
    emulator.add_fault(target="discovery", status=500, count=1)

    # Discovery runs inside MSAL's constructor, which raises for a 5xx.
    with pytest.raises(msal.exceptions.MsalServiceError, match="HTTP Error: 500"):
        make_msal(setup.client_secret)

    assert emulator.stats()["calls"]["discovery"] == {"500": 1}
    assert emulator.stats()["calls"]["token"] == {}


def test_rate_limit_throttles_beyond_the_budget_per_second(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    emulator.rate_limit("createOrGet", 3)

    burst = [graph.create_or_get(setup.user_with_policy, body()) for _ in range(5)]
    time.sleep(1.05)  # the window slides past the burst
    later = graph.create_or_get(setup.user_with_policy, body())
    emulator.rate_limit("createOrGet", None)
    unlimited = [graph.create_or_get(setup.user_with_policy, body()) for _ in range(5)]

    assert [r.status_code for r in burst] == [201, 201, 201, 429, 429]
    assert burst[3].headers["Retry-After"] == "1"
    assert burst[3].json()["error"]["code"] == "TooManyRequests"
    assert later.status_code == 201
    assert {r.status_code for r in unlimited} == {201}


def test_invalid_fault_specs_are_refused(emulator: EmulatorHandle) -> None:
    with pytest.raises(AssertionError, match="target must be one of"):
        emulator.add_fault(target="nowhere", status=500)
    with pytest.raises(AssertionError, match="needs a status"):
        emulator.add_fault(target="token")
    with pytest.raises(AssertionError, match="perSecond"):
        emulator.rate_limit("createOrGet", 0)


def test_fifty_simultaneous_identical_calls_create_one_meeting(
    emulator: EmulatorHandle, setup: EmulatorSetup, token: str
) -> None:
    request = body()
    url = f"{emulator.base_url}/v1.0/users/{setup.user_with_policy}/onlineMeetings/createOrGet"

    def call(_: int) -> requests.Response:
        with emulator.session() as http:  # a Session per thread
            return http.post(
                url, json=request, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(call, range(50)))

    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    [row] = emulator.stats()["meetings"]
    assert (row["created"], row["returned"]) == (1, 49)


# --- faults on the operations on one meeting ---------------------------------------------


@pytest.mark.parametrize("target", ["patchMeeting", "graph", "any"])
def test_patch_faults_leave_the_meeting_unchanged(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle, target: str
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target=target, status=429, retryAfter="3", count=1)
    emulator.add_fault(target=target, status=503, retryAfter="1", count=1)

    throttled = graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "a"})
    unavailable = graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "b"})
    unchanged = emulator.meeting(meeting["id"])
    served = graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "c"})

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "1")
    assert unchanged is not None and unchanged["subject"] is None
    assert served.status_code == 200 and served.json()["subject"] == "c"
    assert emulator.meeting_info(meeting["id"])["patched"] == 1
    assert [o["status"] for o in emulator.operations_for(meeting["id"])] == [429, 503, 200]


@pytest.mark.parametrize("target", ["deleteMeeting", "graph", "any"])
def test_delete_faults_leave_the_meeting_in_place(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle, target: str
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target=target, status=503, retryAfter="2", count=1)

    refused = graph.delete_meeting(setup.user_with_policy, meeting["id"])
    still_there = emulator.meeting(meeting["id"])
    deleted = graph.delete_meeting(setup.user_with_policy, meeting["id"])

    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
    assert still_there is not None
    assert deleted.status_code == 204
    assert emulator.stats()["calls"]["deleteMeeting"] == {"503": 1, "204": 1}


def test_meeting_targets_reach_only_their_operation(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target="patchMeeting", status=500)
    emulator.add_fault(target="deleteMeeting", status=502)
    emulator.add_fault(target="getMeeting", status=504)

    assert graph.create_or_get(setup.user_with_policy, body()).status_code == 201
    assert graph.get_meeting(setup.user_with_policy, meeting["id"]).status_code == 504
    assert graph.update_meeting(setup.user_with_policy, meeting["id"], {}).status_code == 500
    assert graph.delete_meeting(setup.user_with_policy, meeting["id"]).status_code == 502


def test_a_lost_delete_answer_then_the_retry_finds_nothing(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    # The meeting is deleted, but the client sees a 504: its retry gets 404.
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target="deleteMeeting", status=504, afterProcessing=True, count=1)

    lost = graph.delete_meeting(setup.user_with_policy, meeting["id"])
    retried = graph.delete_meeting(setup.user_with_policy, meeting["id"])

    assert lost.status_code == 504
    assert retried.status_code == 404
    assert emulator.meeting(meeting["id"]) is None


def test_a_reset_patch_changes_nothing_unless_after_processing(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target="patchMeeting", reset=True, count=1)
    emulator.add_fault(target="patchMeeting", reset=True, afterProcessing=True, count=1)

    with pytest.raises(requests.ConnectionError):
        graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "first"})
    before = emulator.meeting(meeting["id"])
    with pytest.raises(requests.ConnectionError):
        graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "second"})
    after = emulator.meeting(meeting["id"])

    assert before is not None and before["subject"] is None
    assert after is not None and after["subject"] == "second"
    assert emulator.stats()["calls"]["patchMeeting"] == {"reset": 2}


def test_latency_on_delete_then_served(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.add_fault(target="deleteMeeting", latencyMs=300, count=1)

    started = time.monotonic()
    deleted = graph.delete_meeting(setup.user_with_policy, meeting["id"])

    assert deleted.status_code == 204
    assert time.monotonic() - started >= 0.3


def test_an_organizer_filter_applies_to_patch(
    graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    other = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, other, access_policy=True)
    mine = graph.create_or_get(setup.user_with_policy, body()).json()
    theirs = graph.create_or_get(other, body()).json()
    emulator.add_fault(target="patchMeeting", status=503, organizerId=setup.user_with_policy)

    assert graph.update_meeting(other, theirs["id"], {"subject": "x"}).status_code == 200
    assert graph.update_meeting(setup.user_with_policy, mine["id"], {}).status_code == 503


def test_rate_limit_on_patch(graph: Any, setup: EmulatorSetup, emulator: EmulatorHandle) -> None:
    meeting = graph.create_or_get(setup.user_with_policy, body()).json()
    emulator.rate_limit("patchMeeting", 2)

    statuses = [
        graph.update_meeting(setup.user_with_policy, meeting["id"], {}).status_code
        for _ in range(3)
    ]

    assert statuses == [200, 200, 429]
    assert graph.create_or_get(setup.user_with_policy, body()).status_code == 201
