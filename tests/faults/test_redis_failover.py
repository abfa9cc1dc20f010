"""Failovers under load: 200 concurrent POSTs over 20 bookings, Graph answering in 300 ms,
while the Redis primary that holds those bookings is killed (cluster, Sentinel), hands over
to its replica (CLUSTER FAILOVER), or gives their slots away (resharding).

Each ends with the invariant (one meeting per externalId at the emulator, none under another)
and a row of the failover table: requests, meetings, duplicates, answers other than 2xx by
status, seconds until the bookings' slot answers again, and records lost. The table is
printed at the end and written to redis-failover-table.md under pytest's base temp dir.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from local_stack.processes import wait_until
from redis.cluster import key_slot

from service.storage import keys
from tests.support.emulator import EmulatorHandle
from tests.support.factories import booking
from tests.support.fault_table import Tally
from tests.support.redis_topologies import Cluster, Node, SentinelGroup, until

pytestmark = pytest.mark.faults

BOOKINGS = 20
PER_BOOKING = 10  # 200 POSTs
SETTLED = 20  # stored before the fault, on the same primary: were any lost?
GRAPH_LATENCY_MS = 300
FAULT_AFTER = 0.15  # seconds into the storm: the first lock owners are inside Graph
RECOVERY_TIMEOUT = 30.0


@dataclass
class FailoverRow:
    topology: str
    fault: str
    requests: int
    meetings: int
    duplicates: int
    non_2xx: dict[int, int]
    recovery_seconds: float
    records_lost: int
    in_flight_unstored: int
    probe_503: int  # GETs of a stored booking answered 503 (+ Retry-After) meanwhile


ROWS: list[FailoverRow] = []


@pytest.fixture(scope="module", autouse=True)
def failover_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not ROWS:
        return
    header = "| topology | fault | POSTs | meetings | duplicates | non-2xx by status | "
    header += "recovery s | records lost | in-flight not stored | GET probe 503s |"
    lines = [header, "|" + "---|" * 10]
    for r in ROWS:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(r.non_2xx.items())) or "none"
        lines.append(
            f"| {r.topology} | {r.fault} | {r.requests} | {r.meetings} | {r.duplicates} | "
            f"{statuses} | {r.recovery_seconds:.1f} | {r.records_lost} | "
            f"{r.in_flight_unstored} | {r.probe_503} |"
        )
    base = request.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    Path(base, "redis-failover-table.md").write_text("\n".join(lines) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    found = Cluster(tmp_path / "cluster").start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    found = SentinelGroup(tmp_path / "sentinel").start()
    try:
        yield found
    finally:
        found.stop()


def slot_of(caller_id: str, body: dict[str, Any]) -> int:
    return key_slot(keys.booking(caller_id, body["bookingId"]).encode())


def bookings_on(
    cluster: Cluster, port: int, caller_id: str, organizer: str, count: int
) -> list[dict[str, Any]]:
    """`count` new bookings whose slots the primary on `port` serves."""
    owners = cluster.owners()
    found: list[dict[str, Any]] = []
    while len(found) < count:
        body = booking(organizer)
        slot = slot_of(caller_id, body)
        if any(start <= slot <= end and owner == port for start, end, owner in owners):
            found.append(body)
    return found


class Failover:
    """One failover scenario: settled bookings, then the storm with the fault in it."""

    def __init__(self, services: tuple[str, str], key: str, tally: Tally, emulator: EmulatorHandle):
        # The probe asks its own service process, so that its GETs measure Redis, not a
        # queue behind the storm's 200 POSTs.
        (self.url, self.probe_url), self.key = services, key
        self.tally, self.emulator = tally, emulator

    def run(
        self,
        topology: str,
        fault_name: str,
        in_flight: list[dict[str, Any]],
        settled: list[dict[str, Any]],
        organizer: str,
        fault: Callable[[], None],
        healed: Callable[[], bool],
    ) -> FailoverRow:
        client = self.tally.client(self.url, self.key)
        stored = {}
        for body in settled:
            answer = client.post(body)
            assert answer.status_code == 201, answer.text
            stored[body["bookingId"]] = answer.json()
        probe = settled[0]["bookingId"]
        self.emulator.add_fault(
            target="createOrGet", latencyMs=GRAPH_LATENCY_MS, organizerId=organizer
        )

        jobs = [body for body in in_flight for _ in range(PER_BOOKING)]
        random.shuffle(jobs)
        answers: list[tuple[str, requests.Response]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(jobs) + 1)

        def post(body: dict[str, Any]) -> None:
            own = self.tally.client(self.url, self.key)
            barrier.wait()
            response = own.post(body)
            with lock:
                answers.append((body["bookingId"], response))

        threads = [threading.Thread(target=post, args=(body,), daemon=True) for body in jobs]
        for thread in threads:
            thread.start()
        barrier.wait()
        time.sleep(FAULT_AFTER)
        started = time.monotonic()
        fault()
        # Until the bookings' slot answers again: a GET of a booking stored there (200, or
        # 404 had it been lost) rather than 503; measured from the start of the fault.
        prober = self.tally.client(self.probe_url, self.key)
        unavailable: list[requests.Response] = []

        def answered_from_redis() -> bool:
            response = prober.get(probe)
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) >= 1
                unavailable.append(response)
                return False
            return True

        answered = until(answered_from_redis, RECOVERY_TIMEOUT, 0.1)
        assert answered is not None, f"{probe} still answered 503 after {RECOVERY_TIMEOUT} s"
        recovery = time.monotonic() - started
        for thread in threads:
            thread.join(90)
        assert not any(thread.is_alive() for thread in threads), "a POST never returned"
        wait_until(healed, RECOVERY_TIMEOUT, f"{topology} healed after {fault_name}")
        self.emulator.clear_faults()

        # Every caller got its booking's meeting, or 503 with Retry-After.
        meetings: dict[str, set[str]] = collections.defaultdict(set)
        non_2xx: collections.Counter[int] = collections.Counter()
        for booking_id, response in answers:
            if response.status_code in (200, 201):
                meetings[booking_id].add(response.json()["meetingId"])
            else:
                non_2xx[response.status_code] += 1
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) >= 1
        assert all(len(found) == 1 for found in meetings.values()), meetings

        lost = sum(client.get(b).status_code == 404 for b in stored)
        unstored = sum(client.get(body["bookingId"]).status_code == 404 for body in in_flight)
        external_ids = []
        for body in in_flight:  # asked again after the failover: the same meeting, stored
            again = client.post(body)
            assert again.status_code == 200, again.text
            known = meetings[body["bookingId"]]
            assert not known or known == {again.json()["meetingId"]}
            external_ids.append(again.json()["externalId"])
            replay = client.post(body)
            assert replay.headers.get("Idempotent-Replayed") == "true", replay.text
        for booking_id in stored:
            assert (
                client.post(next(b for b in settled if b["bookingId"] == booking_id)).json()[
                    "meetingId"
                ]
                == stored[booking_id]["meetingId"]
            )

        every = external_ids + [answer["externalId"] for answer in stored.values()]
        counts = self.tally.settle(self.emulator, every, organizer=organizer)
        created = sum(counts[e]["created"] for e in external_ids)
        row = FailoverRow(
            topology=topology,
            fault=fault_name,
            requests=len(jobs),
            meetings=created,
            duplicates=sum(max(0, c["created"] - 1) for c in counts.values()),
            non_2xx=dict(non_2xx),
            recovery_seconds=recovery,
            records_lost=lost,
            in_flight_unstored=unstored,
            probe_503=len(unavailable),
        )
        ROWS.append(row)
        assert (row.meetings, row.duplicates) == (BOOKINGS, 0), row
        return row


def services(start_service, redis_url: str) -> tuple[str, str]:
    """The service under load, and one for the recovery probe."""
    loaded = start_service(REDIS_URL=redis_url, GUNICORN_THREADS="16")
    return loaded.url, start_service(REDIS_URL=redis_url, workers=1).url


def victim_and_bookings(cluster: Cluster, caller_id: str, organizer: str):
    first = booking(organizer)
    victim = cluster.primary_of(slot_of(caller_id, first))
    in_flight = bookings_on(cluster, victim.port, caller_id, organizer, BOOKINGS)
    settled = bookings_on(cluster, victim.port, caller_id, organizer, SETTLED)
    return victim, in_flight, settled


def test_cluster_primary_killed_under_load(
    cluster, start_service, callers, emulator, organizer, tally
):
    urls = services(start_service, cluster.url)
    caller = callers["eu"]
    victim, in_flight, settled = victim_and_bookings(cluster, caller.id, organizer)
    replica = cluster.replica_of(victim)

    def promoted() -> bool:
        return cluster.healthy() and cluster.primary_of(slot_of(caller.id, in_flight[0])) is replica

    # Records lost with the killed primary's last writes are reported in the table, not
    # asserted: replication is asynchronous, and a lost record costs a createOrGet only.
    Failover(urls, caller.key, tally, emulator).run(
        "cluster", "SIGKILL primary", in_flight, settled, organizer, victim.kill, promoted
    )


def test_cluster_manual_failover_under_load(
    cluster, start_service, callers, emulator, organizer, tally
):
    urls = services(start_service, cluster.url)
    caller = callers["eu"]
    victim, in_flight, settled = victim_and_bookings(cluster, caller.id, organizer)
    replica = cluster.replica_of(victim)

    def failover() -> None:
        replica.client().execute_command("CLUSTER", "FAILOVER")

    def promoted() -> bool:
        return cluster.primary_of(slot_of(caller.id, in_flight[0])) is replica

    row = Failover(urls, caller.key, tally, emulator).run(
        "cluster", "CLUSTER FAILOVER", in_flight, settled, organizer, failover, promoted
    )
    assert row.records_lost == 0  # a coordinated failover waits for the replica


def test_cluster_resharding_in_use_slots_under_load(
    cluster, start_service, callers, emulator, organizer, tally
):
    urls = services(start_service, cluster.url)
    caller = callers["eu"]
    victim, in_flight, settled = victim_and_bookings(cluster, caller.id, organizer)
    target = next(
        node
        for node in cluster.nodes
        if node is not victim and any(owner == node.port for _, _, owner in cluster.owners())
    )
    slots = sorted({slot_of(caller.id, body) for body in in_flight + settled})

    def reshard() -> None:
        for slot in slots:
            cluster.migrate_slot(slot, victim, target)

    def moved() -> bool:
        return all(cluster.primary_of(slot) is target for slot in slots[:3])

    row = Failover(urls, caller.key, tally, emulator).run(
        "cluster", f"reshard {len(slots)} slots", in_flight, settled, organizer, reshard, moved
    )
    assert row.records_lost == 0  # MIGRATE moves the keys
    assert not row.non_2xx  # MOVED and ASK are followed by redis-py: no outage


def test_sentinel_primary_killed_under_load(
    sentinel_group, start_service, callers, emulator, organizer, tally
):
    urls = services(start_service, sentinel_group.url)
    caller = callers["eu"]
    in_flight = [booking(organizer) for _ in range(BOOKINGS)]
    settled = [booking(organizer) for _ in range(SETTLED)]
    old: Node = sentinel_group.primary  # type: ignore[assignment]
    new: Node = sentinel_group.replica  # type: ignore[assignment]

    def promoted() -> bool:
        return sentinel_group.current_primary_port() == new.port

    Failover(urls, caller.key, tally, emulator).run(
        "sentinel", "SIGKILL primary", in_flight, settled, organizer, old.kill, promoted
    )
