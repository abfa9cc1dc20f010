"""The two steps of a booking with meeting options (createOrGet, then one PATCH), under
faults: Graph failing or losing the PATCH, a worker killed between the steps, Redis gone
between them, 50 identical requests at once, and a cancel whose closing PATCH fails. Each
ends with exactly one meeting, the options in effect, and the createOrGet and PATCH calls
counted (the fault table's PATCH and "options in effect" columns)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import pytest
from local_stack.processes import wait_until

from service.domain.options import CLOSED_LOBBY
from tests.support.contract import validator
from tests.support.emulator import EmulatorHandle
from tests.support.factories import booking
from tests.support.fault_table import Tally, booking_external_id
from tests.support.fixtures import SHORT_GRAPH_BUDGET, SHORT_GRAPH_READ_TIMEOUT
from tests.support.metrics import scrape, value
from tests.support.problems import assert_problem
from tests.support.processes import kill_redis, kill_the_worker_serving, workers_of

pytestmark = pytest.mark.faults

GRAPH_BUDGET = SHORT_GRAPH_BUDGET
GRAPH_READ_TIMEOUT = SHORT_GRAPH_READ_TIMEOUT
OPTIONS = {
    "lobbyBypassSettings": {"scope": "everyone"},
    "allowedPresenters": "organizer",
    "allowMeetingChat": "limited",
}


@pytest.fixture
def client(short_budget_service, callers, tally):
    return tally.client(short_budget_service.url, callers["eu"].key)


def patches_of(emulator: EmulatorHandle, meeting_id: str) -> list[dict[str, Any]]:
    return [r for r in emulator.operations_for(meeting_id) if r["operation"] == "patchMeeting"]


def in_effect(meeting: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if meeting is None:
        return False
    for name, wanted_value in wanted.items():
        if isinstance(wanted_value, dict):
            if any(meeting.get(name, {}).get(k) != v for k, v in wanted_value.items()):
                return False
        elif meeting.get(name) != wanted_value:
            return False
    return True


def settle_options(
    tally: Tally,
    emulator: EmulatorHandle,
    external_id: str,
    meeting_id: str,
    organizer: str,
    wanted: dict[str, Any] = OPTIONS,
) -> tuple[int, int]:
    """The fault suite's invariant plus the options: one meeting, its options in effect,
    every PATCH body valid against the contract. Returns (createOrGet calls, PATCHes)."""
    counts = tally.settle(emulator, [external_id], organizer=organizer)
    patches = patches_of(emulator, meeting_id)
    for patch in patches:
        validator("onlineMeeting", patch["version"]).validate(patch["body"])
    effective = in_effect(emulator.meeting(meeting_id), wanted)
    assert tally.row is not None
    tally.row.patches = len(patches)
    tally.row.options_in_effect = effective
    assert effective, emulator.meeting(meeting_id)
    return counts[external_id]["calls"], len(patches)


def wait_for_patches(emulator: EmulatorHandle, meeting_id: str, count: int) -> None:
    """Slow PATCH attempts are recorded when the emulator finally answers them."""
    wait_until(
        lambda: len(patches_of(emulator, meeting_id)) >= count,
        10,
        f"{count} PATCH attempts to be recorded",
        lambda: str(patches_of(emulator, meeting_id)),
    )


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retryAfter": "1"},
        {"status": 503, "retryAfter": "1"},
        {"reset": True},
        {"latencyMs": 2000},
        {"status": 503, "afterProcessing": True},
        {"reset": True, "afterProcessing": True},
    ],
    ids=["429", "503", "reset", "read-timeout", "lost-answer-503", "lost-answer-reset"],
)
def test_one_failed_patch_is_retried_inside_the_budget(client, emulator, organizer, tally, fault):
    emulator.add_fault(target="patchMeeting", count=1, organizerId=organizer, **fault)
    body = booking(organizer, options=OPTIONS)

    answer = client.post(body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["optionsPending"] is False
    assert in_effect(answer.json()["options"], OPTIONS)
    meeting_id, external_id = answer.json()["meetingId"], answer.json()["externalId"]
    wait_for_patches(emulator, meeting_id, 2)
    replay = client.post(body)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert settle_options(tally, emulator, external_id, meeting_id, organizer) == (1, 2)


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 429, "retryAfter": "1"},
        {"reset": True},
        {"latencyMs": 1500},
        {"status": 503, "afterProcessing": True},
    ],
    ids=["503", "429", "reset", "read-timeout", "lost-after-processing"],
)
def test_a_patch_failing_past_its_budget_leaves_options_pending_until_the_retry(
    client, emulator, organizer, tally, fault
):
    emulator.add_fault(target="patchMeeting", organizerId=organizer, **fault)
    body = booking(organizer, options=OPTIONS)

    failed = client.post(body)
    problem = assert_problem(failed, 503, "graph-unavailable")
    assert int(failed.headers["Retry-After"]) >= 1
    assert "options" in problem["detail"]
    pending = client.get(body["bookingId"])
    assert pending.status_code == 200
    assert pending.json()["optionsPending"] is True
    meeting_id = pending.json()["meetingId"]
    if fault.get("latencyMs"):
        time.sleep(fault["latencyMs"] / 1000 + 0.5)  # the slow attempts land
    failed_patches = len(patches_of(emulator, meeting_id))
    assert failed_patches >= 1
    emulator.clear_faults()

    retry = client.post(body)
    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["meetingId"] == meeting_id
    assert retry.json()["optionsPending"] is False
    assert in_effect(retry.json()["options"], OPTIONS)
    assert client.get(body["bookingId"]).json()["optionsPending"] is False
    replay = client.post(body)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    calls, patches = settle_options(
        tally, emulator, retry.json()["externalId"], meeting_id, organizer
    )
    assert calls == 1  # the retry did not call createOrGet again
    assert patches == failed_patches + 1


def test_fifty_identical_posts_make_one_create_or_get_and_one_patch(
    short_budget_service, callers, emulator, organizer, tally
):
    body = booking(organizer, options=OPTIONS)
    clients = [tally.client(short_budget_service.url, callers["eu"].key) for _ in range(10)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda i: clients[i % 10].post(body), range(50)))
    statuses = sorted({a.status_code for a in answers})
    assert statuses in ([200, 201], [201]), [a.text for a in answers if a.status_code >= 300]
    assert sum(a.status_code == 201 for a in answers) == 1
    assert len({a.json()["meetingId"] for a in answers}) == 1
    assert all(a.json()["optionsPending"] is False for a in answers)
    answer = answers[0].json()
    assert settle_options(
        tally, emulator, answer["externalId"], answer["meetingId"], organizer
    ) == (1, 1)


def test_a_worker_killed_between_create_or_get_and_the_patch(
    start_service, emulator, callers, organizer, tally
):
    service = start_service(
        workers=2,
        TOKEN_TIMEOUT_SECONDS="1",
        GRAPH_BUDGET_SECONDS="2",
        LOCK_TTL_SECONDS="3.5",
        SINGLE_FLIGHT_WAIT_SECONDS="6.5",
    )
    caller = callers["eu"]
    body = booking(organizer, options=OPTIONS)
    external_id = booking_external_id(caller.id, body["bookingId"])
    # The PATCH is held for 2 s and then dropped unprocessed: the worker dies meanwhile.
    emulator.add_fault(
        target="patchMeeting", latencyMs=2000, reset=True, count=1, organizerId=organizer
    )
    tally.count()
    victim = kill_the_worker_serving(
        service,
        caller.key,
        body,
        lambda: any(m["externalId"] == external_id for m in emulator.stats()["meetings"]),
        "Graph to create the meeting",
        then_wait=0.5,  # the PATCH is on its way
    )
    wait_until(
        lambda: len(workers_of(service)) == 2 and victim not in workers_of(service),
        15,
        "gunicorn to replace the killed worker",
    )

    client = tally.client(service.url, caller.key)
    retry = client.post(body)  # waits out the dead worker's lock
    assert retry.status_code == 200, retry.text
    assert in_effect(retry.json()["options"], OPTIONS)
    meeting_id = retry.json()["meetingId"]
    assert client.post(body).headers.get("Idempotent-Replayed") == "true"
    wait_for_patches(emulator, meeting_id, 2)
    # Nothing was stored before the kill: the retry's createOrGet (200) found the meeting.
    assert settle_options(tally, emulator, external_id, meeting_id, organizer) == (2, 2)


def test_redis_unavailable_between_the_two_steps(
    own_redis, start_service, emulator, callers, organizer, tally
):
    redis_server = own_redis()
    service = start_service(
        REDIS_URL=redis_server.url,
        GRAPH_BUDGET_SECONDS=str(GRAPH_BUDGET),
        TOKEN_TIMEOUT_SECONDS="1",
        LOCK_TTL_SECONDS="5",
        SINGLE_FLIGHT_WAIT_SECONDS="8",
    )
    client = tally.client(service.url, callers["eu"].key)
    body = booking(organizer, options=OPTIONS)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])
    emulator.add_fault(target="patchMeeting", latencyMs=1500, count=1, organizerId=organizer)

    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(client.post(body)))
    sender.start()
    wait_until(
        lambda: any(m["externalId"] == external_id for m in emulator.stats()["meetings"]),
        10,
        "Graph to create the meeting",
    )
    kill_redis(redis_server)  # while the PATCH is at Graph
    sender.join(30)
    assert answers, "no answer"
    first = answers[0]
    assert first.status_code == 201, first.text
    assert in_effect(first.json()["options"], OPTIONS)
    meeting_id = first.json()["meetingId"]
    redis_server.start()  # the same port, empty; the service is not restarted

    # Not stored: the next POST asks Graph again, which has the options already (no PATCH).
    again = client.post(body)
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["meetingId"] == meeting_id
    assert in_effect(again.json()["options"], OPTIONS)
    assert client.post(body).headers.get("Idempotent-Replayed") == "true"
    assert settle_options(tally, emulator, external_id, meeting_id, organizer) == (2, 1)


def test_a_cancel_whose_closing_patch_fails_still_deletes(
    client, short_budget_service, emulator, organizer, tally
):
    body = booking(organizer, options=OPTIONS)
    created = client.post(body)
    assert created.status_code == 201, created.text
    meeting_id = created.json()["meetingId"]
    failures = value(scrape(short_budget_service.url), "mps_lobby_close_failures_total") or 0
    emulator.add_fault(target="patchMeeting", status=503, organizerId=organizer)

    tally.count()
    cancelled = client.delete(body["bookingId"])
    assert cancelled.status_code == 204, cancelled.text
    assert emulator.meeting(meeting_id) is None
    closing = [p for p in patches_of(emulator, meeting_id) if p["body"] == CLOSED_LOBBY]
    assert closing and all(p["status"] == 503 for p in closing)
    assert value(scrape(short_budget_service.url), "mps_lobby_close_failures_total") == failures + 1
    assert_problem(client.get(body["bookingId"]), 404, "booking-cancelled")
    counts = tally.settle(emulator, [created.json()["externalId"]], organizer=organizer)
    assert counts[created.json()["externalId"]]["calls"] == 1
    assert tally.row is not None
    tally.row.patches = len(patches_of(emulator, meeting_id))
