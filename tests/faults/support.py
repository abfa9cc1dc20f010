"""Helpers of the fault suite: gunicorn's workers, the invariant count, and the fault table.

The invariant every fault test ends with: for each booking it touched, the emulator holds
exactly one meeting (no duplicate, none lost), whatever the caller saw on the way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from local_stack.redis_server import RedisServer

from service.booking import external_id
from service.config import DEFAULT_EXTERNAL_ID_NAMESPACE
from tests.support.emulator import EmulatorHandle
from tests.support.metrics import scrape
from tests.support.stack import Client, ServiceProcess

PROBLEM = "application/problem+json"


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"urn:meeting-provisioning:problem:{slug}"
    assert problem["status"] == status
    return problem


def booking_external_id(caller_id: str, booking_id: str) -> str:
    """The externalId the service derives, for answers the caller never received."""
    return external_id(DEFAULT_EXTERNAL_ID_NAMESPACE, caller_id, booking_id)


# --- the invariant and the table --------------------------------------------------------


@dataclass
class Row:
    fault: str
    sent: int
    bookings: int
    created: int
    calls: int
    duplicates: int


TABLE: list[Row] = []


def meeting_counts(emulator: EmulatorHandle, external_ids: Iterable[str]) -> dict[str, dict]:
    """{externalId: {"created", "calls"}} from one stats snapshot of the emulator."""
    return _counts(emulator.stats(), set(external_ids))


def _counts(stats: dict[str, Any], wanted: set[str]) -> dict[str, dict]:
    counts = {e: {"created": 0, "calls": 0} for e in wanted}
    for meeting in stats["meetings"]:
        if meeting["externalId"] in wanted:
            counts[meeting["externalId"]]["created"] += meeting["created"]
    for request in stats["requests"]:
        body = request.get("body")
        if request["operation"] == "createOrGet" and isinstance(body, dict):
            if body.get("externalId") in wanted:
                counts[body["externalId"]]["calls"] += 1
    return counts


def graph_requests_of(emulator: EmulatorHandle, organizer: str) -> list[dict[str, Any]]:
    """Every createOrGet the emulator answered for this organizer, whatever its externalId."""
    return [
        r
        for r in emulator.stats()["requests"]
        if r["operation"] == "createOrGet" and r["userId"] == organizer.lower()
    ]


@dataclass
class Tally:
    """One test's traffic and its final count at the emulator (a row of the fault table)."""

    fault: str
    sent: int = 0
    row: Row | None = None
    strays: list[dict[str, Any]] = field(default_factory=list)
    clients: list[CountingClient] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, requests_sent: int = 1) -> None:
        with self._lock:
            self.sent += requests_sent

    def client(self, url: str, key: str) -> CountingClient:
        client = CountingClient(url, key, self)
        self.clients.append(client)
        return client

    def observe(
        self, emulator: EmulatorHandle, external_ids: Iterable[str], organizer: str | None = None
    ) -> dict[str, dict]:
        """Count the meetings at the emulator into this test's row, without asserting.

        With `organizer` (a fresh one per test), meetings of that organizer under any other
        externalId are found too: a duplicate the service made under a wrong externalId.
        """
        wanted = set(external_ids)
        stats = emulator.stats()
        counts = _counts(stats, wanted)
        self.strays = [
            m
            for m in stats["meetings"]
            if organizer is not None
            and m["userId"] == organizer.lower()
            and m["externalId"] not in wanted
        ]
        self.row = Row(
            fault=self.fault,
            sent=self.sent,
            bookings=len(counts),
            created=sum(c["created"] for c in counts.values()) + len(self.strays),
            calls=sum(c["calls"] for c in counts.values()),
            duplicates=sum(max(0, c["created"] - 1) for c in counts.values()) + len(self.strays),
        )
        return counts

    def settle(
        self,
        emulator: EmulatorHandle,
        external_ids: Iterable[str],
        created: int = 1,
        organizer: str | None = None,
    ) -> dict[str, dict]:
        """Assert the invariant: `created` meetings (default 1) for each externalId, and
        none for the organizer under any other externalId."""
        counts = self.observe(emulator, external_ids, organizer)
        assert not self.strays, f"meetings under other externalIds: {self.strays}"
        wrong = {e: c for e, c in counts.items() if c["created"] != created}
        assert not wrong, f"expected {created} meeting(s) per externalId, got {wrong}"
        return counts


class CountingClient(Client):
    """A booking system's client that counts the requests it sends into its Tally."""

    def __init__(self, base_url: str, key: str, tally: Tally) -> None:
        super().__init__(base_url, key)
        self.tally = tally

    def post(self, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        self.tally.count()
        return super().post(body, headers)

    def get(self, booking_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        self.tally.count()
        return super().get(booking_id, headers)


def render_table(rows: list[Row]) -> list[str]:
    header = ("fault", "requests sent", "bookings", "meetings created", "createOrGet calls",
              "duplicates")  # fmt: skip
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = (r.fault, r.sent, r.bookings, r.created, r.calls, r.duplicates)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


# --- processes --------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The child processes of `pid` (for gunicorn's master: its workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(set(found))


def workers_of(service: ServiceProcess) -> list[int]:
    assert service.process is not None
    return children(service.process.pid)


def _socket_inodes(local_port: int, remote_port: int) -> set[str]:
    """Inodes of established IPv4 TCP sockets from local_port to remote_port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if (
            state == "01"
            and int(local.split(":")[1], 16) == local_port
            and int(remote.split(":")[1], 16) == remote_port
        ):
            inodes.add(inode)
    return inodes


def worker_holding(service: ServiceProcess, client_port: int) -> int:
    """The gunicorn worker that holds the connection a client opened from `client_port`."""
    inodes = _socket_inodes(service.port, client_port)
    assert inodes, f"no connection from port {client_port} to the service"
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in workers_of(service):
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd) in targets:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker of {service.url} holds the connection from {client_port}")


def kill_redis(server: RedisServer) -> None:
    """SIGKILL: redis-server gets no chance to close its connections cleanly."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)


def signal_redis(server: RedisServer, signum: signal.Signals) -> None:
    assert server.process is not None
    server.process.send_signal(signum)


# --- metrics ----------------------------------------------------------------------------


def gauge_values(url: str, name: str) -> list[float]:
    """Every sample of a gauge (one per live worker in gunicorn's multiprocess mode)."""
    return [v for _, v in scrape(url).get(name, [])]


def timed(call, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


# --- a Redis that stalls at the worst moment ---------------------------------------------


class StallingRedisProxy:
    """A TCP proxy in front of a redis-server that pauses the server (SIGSTOP) for `pause`
    seconds right when the first command containing all of `trigger` passes through, and
    then resumes it (SIGCONT). The command itself is delivered: the stalled server runs it
    when it resumes, whether or not the client is still waiting for the answer.
    """

    def __init__(self, server: RedisServer, trigger: tuple[bytes, ...], pause: float) -> None:
        self.server = server
        self.trigger = trigger
        self.pause = pause
        self.armed = threading.Event()
        self.fired = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self) -> None:
        self.fired.clear()
        self.armed.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            self._sockets += [downstream, upstream]
            threading.Thread(
                target=self._pump, args=(downstream, upstream, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, False), daemon=True
            ).start()

    def _pump(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if outbound and self.armed.is_set() and all(t in chunk for t in self.trigger):
                    self.armed.clear()
                    self._stall()
                target.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)  # pass the close on, after the data

    def _stall(self) -> None:
        signal_redis(self.server, signal.SIGSTOP)
        self.fired.set()
        timer = threading.Timer(self.pause, signal_redis, (self.server, signal.SIGCONT))
        timer.daemon = True
        timer.start()
