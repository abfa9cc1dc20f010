"""The per-process circuit breaker in front of Graph: a sustained Graph outage is met with
fast 503s instead of every request spending its budget on retries, and the circuit closes
by itself once Graph answers again."""

from __future__ import annotations

import time

import pytest
import requests
from local_stack.processes import wait_until

from tests.support.factories import booking
from tests.support.metrics import scrape, value
from tests.support.stack import Client

pytestmark = pytest.mark.faults

THRESHOLD = 3
COOLDOWN = 2.0


def graph_calls(emulator, organizer: str) -> int:
    return len([r for r in emulator.stats()["requests"] if r.get("userId") == organizer])


def test_a_sustained_outage_opens_the_circuit_and_it_closes_by_itself(
    start_service, emulator, callers, organizer
):
    # One worker, so the test talks to the one circuit it trips. A call counts once however
    # often it retries, so it takes THRESHOLD calls that each spend a short budget.
    service = start_service(
        workers=1,
        GRAPH_CIRCUIT_FAILURES=str(THRESHOLD),
        GRAPH_CIRCUIT_COOLDOWN_SECONDS=str(COOLDOWN),
        GRAPH_BUDGET_SECONDS="2",
    )
    client = Client(service.url, callers["eu"].key)
    emulator.add_fault(target="createOrGet", status=503, organizerId=organizer)
    failed = [booking(organizer) for _ in range(THRESHOLD)]
    first, second = failed[0], booking(organizer)

    for body in failed[:-1]:
        answer = client.post(body)
        assert answer.status_code == 503, answer.text
        assert answer.json()["reason"] == "503"  # the budget ran out, the circuit was closed
    # The last one's first failure opens the circuit, which then refuses its retry.
    answer = client.post(failed[-1])
    assert answer.status_code == 503, answer.text
    assert answer.json()["reason"] == "circuit_open"
    calls_before_open = graph_calls(emulator, organizer)
    assert calls_before_open >= THRESHOLD

    started = time.monotonic()
    answer = client.post(second)
    elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert problem["type"].endswith(":graph-unavailable")
    assert problem["reason"] == "circuit_open"
    assert 1 <= int(answer.headers["Retry-After"]) <= COOLDOWN
    assert graph_calls(emulator, organizer) == calls_before_open  # refused without calling
    assert elapsed < 1.5  # fast, not a budget (2 s) spent on retries

    ready = requests.get(f"{service.url}/readyz", timeout=5)
    assert ready.status_code == 200  # degraded, not pulled from the load balancer
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["graph"]["status"] == "failing"
    samples = scrape(service.url)
    assert max(v for _, v in samples["mps_graph_circuit_state"]) == 2
    assert value(samples, "mps_graph_circuit_opened_total") == 1
    assert value(samples, "mps_graph_circuit_rejections_total") >= 2

    # Graph recovers; after the cooldown one probe goes through and closes the circuit.
    emulator.clear_faults()
    time.sleep(COOLDOWN)
    for body in (second, first):
        answer = client.post(body)
        assert answer.status_code == 201, answer.text
        assert emulator.meetings_for(answer.json()["externalId"])["created"] == 1
    wait_until(
        lambda: requests.get(f"{service.url}/readyz", timeout=5).json()["status"] == "ready",
        5,
        "readiness back to ready",
    )
    assert max(v for _, v in scrape(service.url)["mps_graph_circuit_state"]) == 0


def test_one_request_that_graph_keeps_failing_does_not_open_it_for_everyone(
    start_service, emulator, callers, organizer, setup
):
    """A call counts once towards the circuit, however many attempts its retries make: one
    caller's request that Graph answers with 500 must not stop other callers' bookings."""
    service = start_service(workers=1, GRAPH_CIRCUIT_FAILURES="2", GRAPH_BUDGET_SECONDS="2")
    odd, other = Client(service.url, callers["eu"].key), Client(service.url, callers["us"].key)
    emulator.add_fault(target="createOrGet", status=500, organizerId=organizer)

    answer = odd.post(booking(organizer))
    assert answer.status_code == 503, answer.text
    assert answer.json()["reason"] == "500"
    assert graph_calls(emulator, organizer) > 2  # it retried past the threshold

    answer = other.post(booking(setup.user_with_policy))
    assert answer.status_code == 201, answer.text
    assert value(scrape(service.url), "mps_graph_circuit_opened_total") == 0


def test_a_start_in_the_last_hour_of_9999_is_refused_and_opens_nothing(
    start_service, emulator, callers, organizer, setup
):
    """Graph's default end (start + 1 h) would be in year 10000: Graph answers 400, which is
    about the request (422 to the caller), not an outage."""
    service = start_service(workers=1, GRAPH_CIRCUIT_FAILURES="2")
    odd, other = Client(service.url, callers["eu"].key), Client(service.url, callers["us"].key)
    for _ in range(3):
        answer = odd.post(booking(organizer, startDateTime="9999-12-31T23:30:00Z"))
        assert answer.status_code == 422, answer.text
        assert answer.json()["graphError"]["status"] == 400
    answer = other.post(booking(setup.user_with_policy))
    assert answer.status_code == 201, answer.text
    assert value(scrape(service.url), "mps_graph_circuit_opened_total") == 0


def test_client_errors_and_throttling_do_not_open_it(start_service, emulator, callers, organizer):
    service = start_service(workers=1, GRAPH_CIRCUIT_FAILURES="2")
    client = Client(service.url, callers["eu"].key)
    # Graph is up and saying no (404 unknown organizer, 429 throttled): not an outage.
    emulator.add_fault(target="createOrGet", status=404, organizerId=organizer, count=3)
    for _ in range(3):
        assert client.post(booking(organizer)).status_code == 422
    emulator.add_fault(
        target="createOrGet", status=429, retryAfter="1", organizerId=organizer, count=3
    )
    answer = client.post(booking(organizer))
    assert answer.status_code == 201, answer.text
    assert value(scrape(service.url), "mps_graph_circuit_opened_total") == 0
