"""The core scenarios against each Redis topology REDIS_URL can name: a 6-node Redis Cluster
(redis+cluster://), a Sentinel group (redis+sentinel://) and one node over TLS with an ACL
user and a client certificate (rediss://); and a wrong Redis password, shown as Redis failing
without the password anywhere."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.factories import booking
from tests.support.metrics import scrape, value
from tests.support.problems import assert_problem
from tests.support.redis_topologies import Cluster, SentinelGroup, TlsRedis
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

LIMIT = 3
MONDAY = {"startDateTime": "2026-11-23T09:00:00Z", "endDateTime": "2026-11-23T10:00:00Z"}
TUESDAY = {"startDateTime": "2026-11-24T14:00:00Z", "endDateTime": "2026-11-24T15:00:00Z"}


def start_topology(name: str, directory: Path) -> tuple[Any, dict[str, str]]:
    if name == "cluster":
        cluster = Cluster(directory).start()
        return cluster, {"REDIS_URL": cluster.url}
    if name == "sentinel":
        group = SentinelGroup(directory).start()
        return group, {"REDIS_URL": group.url}
    server = TlsRedis(directory).start()
    return server, {
        "REDIS_URL": server.url(),
        "REDIS_CA_BUNDLE": str(server.ca_bundle),
        "REDIS_CLIENT_CERT": str(server.client_cert),
        "REDIS_CLIENT_KEY": str(server.client_key),
    }


@pytest.fixture(scope="module", params=["cluster", "sentinel", "tls-acl"])
def topology_service(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    service_env: Callable[..., dict[str, str]],
) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp(request.param)
    topology, env = start_topology(request.param, directory / "redis")
    service = ServiceProcess(
        directory / "service", service_env(ORGANIZER_MONTHLY_LIMIT=str(LIMIT), **env)
    )
    try:
        yield service.start()
    finally:
        service.stop()
        topology.stop()


def test_the_core_scenarios(topology_service, callers, emulator, organizer):
    """create, replay, 409, a storm of one booking, PATCH, DELETE and re-book, the quota"""
    client = Client(topology_service.url, callers["eu"].key)
    ready = requests.get(f"{topology_service.url}/readyz", timeout=5).json()
    assert ready["checks"]["redis"] == {"status": "ok"}, ready

    original = booking(organizer, subject="Consultation", **MONDAY)
    booking_id = original["bookingId"]
    created = client.post(original)
    assert created.status_code == 201, created.text
    first = created.json()
    replay = client.post(original)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (200, "true")
    assert replay.json()["meetingId"] == first["meetingId"]
    assert_problem(client.post({**original, "subject": "Other"}), 409, "booking-conflict")

    stormed = booking(organizer)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: client.post(stormed), range(20)))
    assert sorted({a.status_code for a in answers}) in ([200, 201], [201]), [
        a.text for a in answers
    ]
    assert [a.status_code for a in answers].count(201) == 1
    assert len({a.json()["meetingId"] for a in answers}) == 1
    assert emulator.meetings_for(answers[0].json()["externalId"])["created"] == 1

    moved = client.patch(booking_id, TUESDAY)
    assert moved.status_code == 200, moved.text
    assert client.get(booking_id).json()["startDateTime"].startswith("2026-11-24T14:00:00")
    assert client.delete(booking_id).status_code == 204
    assert_problem(client.get(booking_id), 404, "booking-cancelled")
    again = client.post(original)
    assert again.status_code == 201, again.text
    assert again.json()["externalId"] != first["externalId"]  # a new generation
    for external_id in (first["externalId"], again.json()["externalId"]):
        assert emulator.meetings_for(external_id)["created"] == 1

    # The quota: this organizer has 3 meetings (original, stormed, re-booked) = LIMIT.
    assert client.usage(organizer).json()["created"] == LIMIT
    assert_problem(client.post(booking(organizer)), 429, "organizer-quota-exhausted")
    samples = scrape(topology_service.url)
    assert value(samples, "mps_organizer_meetings_month", organizer=organizer) == LIMIT


def test_a_wrong_redis_password_is_redis_failing_and_never_logged(
    tmp_path, service_env, callers, emulator, organizer
):
    server = TlsRedis(tmp_path / "redis").start()
    wrong = "Wr0ng-Pa55word-for-the-log-check"
    env = service_env(
        REDIS_URL=server.url(wrong),
        REDIS_CA_BUNDLE=str(server.ca_bundle),
        REDIS_CLIENT_CERT=str(server.client_cert),
        REDIS_CLIENT_KEY=str(server.client_key),
        LOG_LEVEL="DEBUG",
    )
    service = ServiceProcess(tmp_path / "service", env, workers=1)
    try:
        service.start()
        ready = requests.get(f"{service.url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
        assert ready.json()["checks"]["redis"]["status"] == "failing"
        # POST still gives the meeting (Graph directly); GET says the store is missing.
        body = booking(organizer)
        client = Client(service.url, callers["eu"].key)
        assert client.post(body).status_code == 201
        assert_problem(client.get(body["bookingId"]), 503, "store-unavailable")
    finally:
        service.stop()
        server.stop()
    log = service.log()
    assert "redis unavailable: AuthenticationError" in log
    assert wrong not in log and server.password not in log
