"""A gunicorn worker SIGKILLed in the middle of a Graph call: Graph has created the
meeting, the caller sees its connection drop, and the booking's lock stays behind. Once
the lock expires, the caller's retry finishes the booking with that same meeting."""

from __future__ import annotations

import pytest
from local_stack.processes import wait_until

from service.storage import keys
from tests.support.factories import booking
from tests.support.fault_table import booking_external_id, graph_requests_of
from tests.support.processes import kill_the_worker_serving, workers_of

pytestmark = pytest.mark.faults

GRAPH_LATENCY_MS = 2000
# The lock must outlive token + Graph budgets (checked at start): 1 + 2 < 3.5.
LOCK_TTL = 3.5


def test_a_worker_killed_mid_call_leaves_one_meeting_that_the_retry_returns(
    start_service, emulator, callers, organizer, redis_server, tally
):
    service = start_service(
        workers=2,
        TOKEN_TIMEOUT_SECONDS="1",
        GRAPH_BUDGET_SECONDS="2",
        LOCK_TTL_SECONDS=str(LOCK_TTL),
        SINGLE_FLIGHT_WAIT_SECONDS=str(LOCK_TTL + 3),  # the retry waits out the lock
    )
    caller = callers["eu"]
    body = booking(organizer)
    external_id = booking_external_id(caller.id, body["bookingId"])
    lock_key = keys.lock(caller.id, body["bookingId"])
    # Graph creates the meeting at once, then holds its answer back for 2 s.
    emulator.add_fault(
        target="createOrGet",
        latencyMs=GRAPH_LATENCY_MS,
        afterProcessing=True,
        count=1,
        organizerId=organizer,
    )

    tally.count()
    victim = kill_the_worker_serving(
        service,
        caller.key,
        body,
        lambda: any(
            m["externalId"] == external_id and m["created"] == 1
            for m in emulator.stats()["meetings"]
        ),
        "Graph to create the meeting",
    )

    # The dead worker's lock is still there; nothing was stored.
    assert redis_server.client().pttl(lock_key) > 0
    assert redis_server.client().get(keys.booking(caller.id, body["bookingId"])) is None
    wait_until(
        lambda: len(workers_of(service)) == 2 and victim not in workers_of(service),
        15,
        "gunicorn to replace the killed worker",
    )

    client = tally.client(service.url, caller.key)
    retry = client.post(body)
    assert retry.status_code == 200, retry.text  # Graph's 200: the meeting existed
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["externalId"] == external_id
    assert redis_server.client().exists(lock_key) == 0  # expired, taken, released
    replay = client.post(body)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["meetingId"] == retry.json()["meetingId"]

    # The killed call is recorded when the emulator finally answers (into a closed socket).
    wait_until(
        lambda: len(graph_requests_of(emulator, organizer)) == 2,
        10,
        "the killed call to be recorded",
    )
    counts = tally.settle(emulator, [external_id], organizer=organizer)
    assert counts[external_id] == {"created": 1, "calls": 2}
    statuses = [r["status"] for r in emulator.requests_for(external_id)]
    assert sorted(statuses) == [200, 201]
