"""SIGTERM to gunicorn: readiness turns 503 at once, new connections are still served for
PRE_STOP_DELAY_SECONDS, then the socket closes and in-flight requests finish (graceful
timeout) before the master exits."""

from __future__ import annotations

import concurrent.futures
import signal
import time
import uuid

import pytest
import requests
from local_stack.processes import wait_until

from tests.support.factories import booking
from tests.support.stack import Client

pytestmark = pytest.mark.faults

GRAPH_LATENCY_MS = 6000
# The emulator records a request only once it has answered, so the test cannot see the
# slow call arrive; this is ample time for it to get there (a token, then Graph).
REACH_GRAPH_SECONDS = 1.0


def refuses_connections(url: str) -> bool:
    try:
        requests.get(f"{url}/healthz", timeout=1)
    except requests.ConnectionError:
        return True
    return False


def new_organizer(emulator, setup) -> str:
    user_id = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, user_id, access_policy=True)
    return user_id


def start_slow_post(pool, service, emulator, callers, organizer):
    """A POST that is inside a 6 s Graph call when this returns."""
    emulator.add_fault(
        target="createOrGet", latencyMs=GRAPH_LATENCY_MS, organizerId=organizer, count=1
    )
    in_flight = pool.submit(Client(service.url, callers["eu"].key).post, booking(organizer))
    time.sleep(REACH_GRAPH_SECONDS)
    assert not in_flight.done(), in_flight.result().text
    return in_flight


def test_sigterm_drains_after_the_pre_stop_delay(
    start_service, emulator, callers, organizer, setup
):
    service = start_service(PRE_STOP_DELAY_SECONDS="2")
    other = new_organizer(emulator, setup)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        in_flight = start_slow_post(pool, service, emulator, callers, organizer)
        service.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # During the delay: not ready, but still serving new connections.
        wait_until(
            lambda: requests.get(f"{service.url}/readyz", timeout=2).status_code == 503,
            1.5,
            "readiness to turn 503",
        )
        assert requests.get(f"{service.url}/readyz", timeout=2).json()["status"] == "draining"
        late = Client(service.url, callers["eu"].key).post(booking(other))
        assert late.status_code == 201, late.text
        assert time.monotonic() - signalled < 2  # it really was inside the delay

        # After the delay the socket closes, while the slow request is still in flight.
        wait_until(lambda: refuses_connections(service.url), 5, "the socket to close")
        refused_after = time.monotonic() - signalled
        assert refused_after >= 2
        assert not in_flight.done()

        answer = in_flight.result(timeout=15)
    assert answer.status_code == 201, answer.text
    assert service.process.wait(15) == 0
    for response in (answer, late):
        assert emulator.meetings_for(response.json()["externalId"]) == {"created": 1, "calls": 1}


def test_without_a_delay_sigterm_closes_at_once_and_still_drains(
    start_service, emulator, callers, organizer
):
    service = start_service()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = start_slow_post(pool, service, emulator, callers, organizer)
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(service.url), 2, "the socket to close")
        assert not in_flight.done()
        answer = in_flight.result(timeout=15)
    assert answer.status_code == 201, answer.text
    assert service.process.wait(15) == 0
    assert emulator.meetings_for(answer.json()["externalId"]) == {"created": 1, "calls": 1}
