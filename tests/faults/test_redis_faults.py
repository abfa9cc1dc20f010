"""Redis stopped, killed, paused and flapping under a running service: POST keeps giving
the booking's one meeting (Graph directly, on the derived externalId), GET and readiness
say what is missing, and the service recovers by itself when Redis is back."""

from __future__ import annotations

import itertools
import signal
import threading
import time

import pytest
import requests
from local_stack.processes import wait_until

from tests.support.factories import booking
from tests.support.fault_table import booking_external_id
from tests.support.metrics import gauge_values, timed
from tests.support.problems import assert_problem
from tests.support.processes import kill_redis, signal_redis
from tests.support.stalling_redis import StallingRedisProxy

pytestmark = pytest.mark.faults

GRAPH_BUDGET = 5.0
FLAPPING_SECONDS = 3.0


def readiness(url: str) -> requests.Response:
    return requests.get(f"{url}/readyz", timeout=5)


def assert_degraded(url: str) -> None:
    """A Redis outage hits every replica alike: still serving (200), reported as degraded."""
    ready = readiness(url)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded", body
    assert body["checks"]["config"] == {"status": "ok"}
    assert body["checks"]["redis"]["status"] == "failing"
    assert isinstance(body["checks"]["redis"]["detail"], str) and body["checks"]["redis"]["detail"]


def assert_direct(response: requests.Response, status: int, meeting_id: str | None = None) -> None:
    """Answered by Graph, not by the store."""
    assert response.status_code == status, response.text
    assert "Idempotent-Replayed" not in response.headers
    if meeting_id is not None:
        assert response.json()["meetingId"] == meeting_id


def assert_replayed(response: requests.Response, meeting_id: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers.get("Idempotent-Replayed") == "true"
    assert response.json()["meetingId"] == meeting_id


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_redis_outage_degrades_and_recovers_without_a_restart(
    own_redis, start_service, emulator, callers, organizer, tally, stop
):
    redis_server = own_redis()
    # One worker: /metrics then shows the gauge of the process that served the requests.
    service = start_service(workers=1, REDIS_URL=redis_server.url, GRAPH_BUDGET_SECONDS="5")
    client = tally.client(service.url, callers["eu"].key)
    stored, new = booking(organizer), booking(organizer)

    before = client.post(stored)
    assert before.status_code == 201, before.text
    assert gauge_values(service.url, "mps_redis_up") == [1.0]

    if stop == "sigterm":
        redis_server.stop()
    else:
        kill_redis(redis_server)

    first, elapsed = timed(client.post, new)
    assert_direct(first, 201)
    assert elapsed < GRAPH_BUDGET
    meeting_id = first.json()["meetingId"]
    again, elapsed = timed(client.post, new)
    assert_direct(again, 200, meeting_id)  # Graph's 200: nothing could be replayed
    assert elapsed < GRAPH_BUDGET
    assert_direct(client.post(stored), 200, before.json()["meetingId"])

    unreadable = client.get(new["bookingId"])
    problem = assert_problem(unreadable, 503, "store-unavailable")
    assert int(unreadable.headers["Retry-After"]) >= 1
    assert problem["retryAfterSeconds"] == int(unreadable.headers["Retry-After"])
    assert gauge_values(service.url, "mps_redis_up") == [0.0]
    assert_degraded(service.url)

    redis_server.start()  # the same port, empty; the service is not restarted
    assert_direct(client.post(new), 200, meeting_id)  # stored again
    assert_replayed(client.post(new), meeting_id)
    assert client.get(new["bookingId"]).json()["meetingId"] == meeting_id
    assert gauge_values(service.url, "mps_redis_up") == [1.0]
    ready = readiness(service.url)
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text

    counts = tally.settle(
        emulator,
        [first.json()["externalId"], before.json()["externalId"]],
        created=1,
        organizer=organizer,
    )
    assert counts[first.json()["externalId"]]["calls"] == 3  # two in the outage, one after
    assert counts[before.json()["externalId"]]["calls"] == 2


def test_redis_paused_by_sigstop_still_answers_with_the_meeting(
    own_redis, start_service, emulator, callers, organizer, tally
):
    redis_server = own_redis()
    service = start_service(REDIS_URL=redis_server.url, GRAPH_BUDGET_SECONDS="5")
    client = tally.client(service.url, callers["eu"].key)
    stored, new = booking(organizer), booking(organizer)
    before = client.post(stored)
    assert before.status_code == 201, before.text

    signal_redis(redis_server, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        first, elapsed = timed(client.post, new)
        assert_direct(first, 201)
        # A command's timeout and its one retry, then Graph: far below the Graph budget.
        assert elapsed < GRAPH_BUDGET
        assert_direct(client.post(stored), 200, before.json()["meetingId"])
    finally:
        signal_redis(redis_server, signal.SIGCONT)

    meeting_id = first.json()["meetingId"]
    assert_direct(client.post(new), 200, meeting_id)
    assert_replayed(client.post(new), meeting_id)
    assert_replayed(client.post(stored), before.json()["meetingId"])
    tally.settle(
        emulator, [first.json()["externalId"], before.json()["externalId"]], organizer=organizer
    )


def test_redis_paused_by_client_pause_still_answers_with_the_meeting(
    own_redis, start_service, emulator, callers, organizer, tally
):
    """CLIENT PAUSE holds every command for a while, then runs them all (like a Redis
    stuck in a slow command; DEBUG SLEEP is not allowed on a default redis-server 7)."""
    redis_server = own_redis()
    service = start_service(REDIS_URL=redis_server.url, GRAPH_BUDGET_SECONDS="5")
    client = tally.client(service.url, callers["eu"].key)
    body = booking(organizer)

    redis_server.client().execute_command("CLIENT", "PAUSE", "2500", "ALL")
    first, elapsed = timed(client.post, body)
    assert_direct(first, 201)
    assert elapsed < GRAPH_BUDGET
    meeting_id = first.json()["meetingId"]

    wait_until(redis_server.ping, 10, "Redis to resume after CLIENT PAUSE")
    second = client.post(body)
    assert second.status_code == 200, second.text
    assert second.json()["meetingId"] == meeting_id
    assert_replayed(client.post(body), meeting_id)
    tally.settle(emulator, [first.json()["externalId"]], organizer=organizer)


def test_flapping_redis_never_costs_a_meeting_or_makes_a_second_one(
    own_redis, start_service, emulator, callers, organizer, tally
):
    """Redis stops and resumes every second or so while bookings are made and repeated:
    every answer is the booking's one meeting. (A stop that begins exactly at a lock SET is
    provoked deterministically by the stalled-lock test below.)
    """
    redis_server = own_redis()
    service = start_service(
        REDIS_URL=redis_server.url, GRAPH_BUDGET_SECONDS="5", SINGLE_FLIGHT_WAIT_SECONDS="3"
    )
    client = tally.client(service.url, callers["eu"].key)
    bodies = [booking(organizer) for _ in range(6)]
    done = threading.Event()

    def flap() -> None:
        # Stops shorter than redis-py's two attempts (0.5 s each) only slow a command down;
        # longer ones make it fail, and the request calls Graph directly.
        for stopped in itertools.cycle((0.8, 1.2)):
            if done.is_set():
                return
            signal_redis(redis_server, signal.SIGSTOP)
            done.wait(stopped)
            signal_redis(redis_server, signal.SIGCONT)
            done.wait(0.4)

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    answers: dict[str, list[requests.Response]] = {b["bookingId"]: [] for b in bodies}
    started = time.monotonic()
    try:
        while time.monotonic() - started < FLAPPING_SECONDS:
            for body in bodies:
                answers[body["bookingId"]].append(client.post(body))
                time.sleep(0.05)
    finally:
        done.set()
        flapper.join(5)
        signal_redis(redis_server, signal.SIGCONT)

    external_ids = []
    for booking_id, responses in answers.items():
        statuses = [r.status_code for r in responses]
        assert all(s in (200, 201) for s in statuses), (booking_id, [r.text for r in responses])
        assert statuses.count(201) <= 1, statuses
        assert len({r.json()["meetingId"] for r in responses}) == 1
        external_ids.append(responses[0].json()["externalId"])
    tally.settle(emulator, external_ids, organizer=organizer)


@pytest.mark.parametrize(
    "pause",
    [0.75, 1.3],
    ids=["stall-absorbed-by-redis-py-retry", "stall-past-both-attempts"],
)
def test_a_lock_set_that_stalls_past_its_timeout_does_not_block_the_booking(
    own_redis, start_service, emulator, callers, organizer, tally, pause
):
    """Redis stalls (SIGSTOP) right as the booking's lock is taken, for longer than the
    0.5 s command timeout. redis-py gives up on the SET NX and sends it once more; the
    stalled server runs both when it resumes, and the first takes the lock with this
    request's token. The store must then recognise the lock as its own (stalled 0.75 s:
    the resent SET is refused by it), and a request that went to Graph directly must
    release the token it tried to lock with (stalled 1.3 s). Otherwise every later POST
    of the booking would wait and get 503 until the lock expired.
    """
    redis_server = own_redis()
    proxy = StallingRedisProxy(redis_server, trigger=(b"mps:v1:lock", b"NX"), pause=pause)
    body = booking(organizer)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])
    try:
        service = start_service(REDIS_URL=proxy.url, SINGLE_FLIGHT_WAIT_SECONDS="1")
        client = tally.client(service.url, callers["eu"].key)
        proxy.arm()
        first = client.post(body)
        assert proxy.fired.is_set(), "the lock was never taken through the proxy"
        wait_until(redis_server.ping, 10, "Redis to resume")

        assert first.status_code in (200, 201), first.text
        meeting_id = first.json()["meetingId"]
        second = client.post(body)
        assert second.status_code == 200, second.text
        assert second.json()["meetingId"] == meeting_id
    finally:
        proxy.close()
        tally.observe(emulator, [external_id], organizer=organizer)
    tally.settle(emulator, [external_id], organizer=organizer)
