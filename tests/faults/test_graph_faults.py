"""Graph throttling, errors, silence and lost answers, counted at the emulator: one POST
still gives exactly one meeting, and when the budget runs out the caller is told when to
come back, and coming back creates the meeting exactly once."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from local_stack.processes import wait_until

from tests.support.factories import booking
from tests.support.fault_table import graph_requests_of, meeting_counts
from tests.support.fixtures import SHORT_GRAPH_BUDGET, SHORT_GRAPH_READ_TIMEOUT
from tests.support.metrics import scrape, timed, value
from tests.support.problems import assert_problem
from tests.support.stack import ServiceProcess

pytestmark = pytest.mark.faults

GRAPH_BUDGET = SHORT_GRAPH_BUDGET
GRAPH_READ_TIMEOUT = SHORT_GRAPH_READ_TIMEOUT
# The budget, plus the one attempt that may start just before it ends, plus slack for a
# busy machine: an answer later than this was not bounded by the budget.
ANSWER_BOUND = GRAPH_BUDGET + GRAPH_READ_TIMEOUT + 2.0


@pytest.fixture
def client(short_budget_service, callers, tally):
    return tally.client(short_budget_service.url, callers["eu"].key)


def graph_timeouts(service: ServiceProcess) -> float:
    samples = scrape(service.url)
    return value(samples, "mps_graph_calls_total", operation="createOrGet", status="timeout")


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"status": 429, "retryAfter": "1"}, 201),
        ({"status": 429, "retryAfter": "http-date"}, 201),
        ({"status": 503, "retryAfter": "1"}, 201),
        ({"status": 500}, 201),
        ({"status": 502}, 201),
        ({"status": 504}, 201),
        ({"reset": True}, 201),
        # Graph takes longer than the read timeout: the first attempt still creates the
        # meeting at Graph, after the service gave up on it; 201 or 200, whichever lands first.
        ({"latencyMs": 2000}, None),
        # Graph created the meeting, but its answer is lost: the retry gets it with 200.
        ({"reset": True, "afterProcessing": True}, 200),
        ({"status": 503, "afterProcessing": True}, 200),
    ],
    ids=[
        "429-retry-after-seconds",
        "429-retry-after-http-date",
        "503-retry-after",
        "500",
        "502",
        "504",
        "connection-reset",
        "read-timeout",
        "lost-answer-reset",
        "lost-answer-503",
    ],
)
def test_one_graph_fault_is_retried_into_exactly_one_meeting(
    client, emulator, organizer, tally, fault, status
):
    if fault.get("retryAfter") == "http-date":
        fault = {**fault, "retryAfter": formatdate(time.time() + 1, usegmt=True)}
    emulator.add_fault(target="createOrGet", count=1, organizerId=organizer, **fault)
    body = booking(organizer)

    answer, elapsed = timed(client.post, body)
    assert answer.status_code in ((200, 201) if status is None else (status,)), answer.text
    assert "Idempotent-Replayed" not in answer.headers
    assert elapsed < ANSWER_BOUND
    external_id = answer.json()["externalId"]
    # The slow attempt is recorded by the emulator when it finally answers.
    wait_until(
        lambda: len(graph_requests_of(emulator, organizer)) == 2,
        10,
        "both attempts to be recorded by the emulator",
        lambda: str(graph_requests_of(emulator, organizer)),
    )
    replay = client.post(body)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["meetingId"] == answer.json()["meetingId"]
    counts = tally.settle(emulator, [external_id], organizer=organizer)
    assert counts[external_id] == {"created": 1, "calls": 2}


def test_a_persistent_503_exhausts_the_budget_and_the_retry_creates_one_meeting(
    client, emulator, organizer, tally
):
    emulator.add_fault(target="createOrGet", status=503, organizerId=organizer)
    body = booking(organizer)

    answer, elapsed = timed(client.post, body)
    problem = assert_problem(answer, 503, "graph-unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
    assert problem["retryAfterSeconds"] == int(answer.headers["Retry-After"])
    assert elapsed < ANSWER_BOUND
    attempts = [r for r in emulator.stats()["requests"] if r["userId"] == organizer]
    assert len(attempts) >= 2, attempts  # it retried before giving up
    assert all(r["status"] == 503 for r in attempts)
    external_id = attempts[0]["body"]["externalId"]
    assert meeting_counts(emulator, [external_id])[external_id]["created"] == 0

    emulator.clear_faults()
    again = client.post(body)
    assert again.status_code == 201, again.text
    assert again.json()["externalId"] == external_id
    counts = tally.settle(emulator, [external_id], organizer=organizer)
    assert counts[external_id]["calls"] == len(attempts) + 1


def test_a_retry_after_beyond_the_budget_is_passed_on_at_once(client, emulator, organizer, tally):
    emulator.add_fault(target="createOrGet", status=503, retryAfter="120", organizerId=organizer)
    body = booking(organizer)

    answer, elapsed = timed(client.post, body)
    assert_problem(answer, 503, "graph-unavailable")
    assert answer.headers["Retry-After"] == "120"
    assert elapsed < GRAPH_BUDGET  # it did not sleep into a budget it cannot fit in
    attempts = [r for r in emulator.stats()["requests"] if r["userId"] == organizer]
    assert len(attempts) == 1
    external_id = attempts[0]["body"]["externalId"]
    assert meeting_counts(emulator, [external_id])[external_id]["created"] == 0

    emulator.clear_faults()
    assert client.post(body).status_code == 201
    tally.settle(emulator, [external_id], organizer=organizer)


def test_graph_too_slow_is_504_and_the_retry_gets_the_same_meeting(
    client, short_budget_service, emulator, organizer, tally
):
    """Every attempt times out, but Graph goes on to handle each one: the first creates the
    meeting after the caller got 504; the retry returns that meeting, not a second one."""
    emulator.add_fault(target="createOrGet", latencyMs=2000, organizerId=organizer)
    body = booking(organizer)
    timeouts_before = graph_timeouts(short_budget_service)

    answer, elapsed = timed(client.post, body)
    problem = assert_problem(answer, 504, "graph-timeout")
    assert "safe" in problem["detail"]
    assert elapsed < ANSWER_BOUND
    attempts = graph_timeouts(short_budget_service) - timeouts_before
    assert attempts >= 2  # retried inside the budget

    emulator.clear_faults()
    again = client.post(body)
    assert again.status_code in (200, 201), again.text
    external_id = again.json()["externalId"]
    wait_until(
        lambda: meeting_counts(emulator, [external_id])[external_id]["calls"] == attempts + 1,
        10,
        "the slow attempts to be handled by the emulator",
    )
    counts = tally.settle(emulator, [external_id], organizer=organizer)
    assert counts[external_id]["calls"] == attempts + 1
    assert client.post(body).json()["meetingId"] == again.json()["meetingId"]
