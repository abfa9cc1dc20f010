"""nginx in front of the service, as in the pod, for the end-to-end tests and the bench;
and the slow clients it is there for.

The proxy is started from the one template (deploy/base/proxy/nginx.conf.template) by
local_stack, as `make run` starts it: on a free loopback port, as the current user, with its
state in the test's directory. `SlowClients` holds many connections that send part of a request and
then nothing, or trickle it; `Traffic` measures ordinary callers meanwhile.
"""

from __future__ import annotations

import errno
import selectors
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import requests
from local_stack.proxy import proxy_values, start_proxy

from tests.support.stack import LoopbackServer


@dataclass
class ProxyProcess(LoopbackServer):
    """nginx listening on 127.0.0.1:`port`, proxying to `upstream` ("127.0.0.1:port").

    `service_env` supplies the service's settings the template uses (MAX_BODY_BYTES,
    GUNICORN_TIMEOUT; their defaults otherwise); `overrides` replaces any template value,
    e.g. PROXY_HEADER_TIMEOUT="3s" for a fast test. `stop()` is the fast shutdown (SIGTERM)
    Ctrl-C of `make run` does."""

    upstream: str
    service_env: Mapping[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)

    NAME = "nginx"
    LOG_NAME = "nginx.log"
    HEALTH_PATH = "/_proxy/healthz"

    @property
    def values(self) -> dict[str, str]:
        return proxy_values(
            self.directory,
            f"127.0.0.1:{self.port}",
            self.upstream,
            self.service_env,
            **self.overrides,
        )

    def launch(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        return start_proxy(self.directory, self.values, stdout=log, stderr=subprocess.STDOUT)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --- slow clients -------------------------------------------------------------------------

# What each kind of slow connection sends at once, before going quiet or trickling.
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nUser-Agent: slow-client\r\n"
PARTIAL_BODY = (
    b"POST /v1/meetings HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n" + b'{"bookingId": "slow-'
)
TRICKLE_HEAD = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Trickle: " + b"a" * 4000
KINDS = ("head", "body", "trickle")


@dataclass
class _Slow:
    kind: str
    sock: socket.socket
    opened: float
    last_sent: float
    trickled: int = 0


@dataclass
class Closed:
    """One slow connection the server closed: how long after it was opened and after the
    last byte the client sent, and whether the server answered anything first."""

    kind: str
    lifetime: float
    after_last_byte: float
    answered: bytes


class SlowClients:
    """`count` connections to `port`, in turn each of `kinds`: a partial head then silence
    ("head"), a whole head and part of a 1000-byte body then silence ("body"), and a head
    trickled one byte every `trickle_every` seconds ("trickle"). A closed connection is
    recorded and replaced at once, so `count` stay open until `stop()`. One thread, one
    selector: the attack itself costs little CPU."""

    def __init__(
        self,
        port: int,
        count: int = 200,
        trickle_every: float = 2.0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.port = port
        self.count = count
        self.trickle_every = trickle_every
        self.kinds = kinds
        self.closed: list[Closed] = []
        self.open_failures = 0
        self.max_open = 0
        self._selector = selectors.DefaultSelector()
        self._slow: dict[int, _Slow] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._serial = 0

    def __enter__(self) -> SlowClients:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[_Slow]:
        """Stop the attack; returns the connections still open then (closed by us)."""
        self._stop.set()
        self._thread.join(30)
        left = list(self._slow.values())
        for slow in left:
            self._selector.unregister(slow.sock)
            slow.sock.close()
        self._slow.clear()
        self._selector.close()
        return left

    def _open(self) -> None:
        kind = self.kinds[self._serial % len(self.kinds)]
        self._serial += 1
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", self.port))
            sock.sendall({"head": PARTIAL_HEAD, "body": PARTIAL_BODY, "trickle": b"G"}[kind])
        except OSError:
            self.open_failures += 1
            sock.close()
            return
        sock.setblocking(False)
        now = time.monotonic()
        self._slow[sock.fileno()] = _Slow(kind, sock, now, now)
        self._selector.register(sock, selectors.EVENT_READ)
        self.max_open = max(self.max_open, len(self._slow))

    def _closed(self, slow: _Slow, answered: bytes) -> None:
        now = time.monotonic()
        self._selector.unregister(slow.sock)
        del self._slow[slow.sock.fileno()]
        slow.sock.close()
        self.closed.append(Closed(slow.kind, now - slow.opened, now - slow.last_sent, answered))

    def _run(self) -> None:
        while not self._stop.is_set():
            while len(self._slow) < self.count and not self._stop.is_set():
                self._open()
            for key, _ in self._selector.select(timeout=0.1):
                slow = self._slow[key.fd]
                answered = b""
                while True:  # read what the server says until it closes or pauses
                    try:
                        chunk = slow.sock.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError as error:  # reset: closed with nothing (more) to say
                        if error.errno not in (errno.ECONNRESET, errno.EPIPE):
                            raise
                        chunk = b""
                    if not chunk:
                        self._closed(slow, answered)
                        break
                    answered += chunk
            now = time.monotonic()
            trickle = TRICKLE_HEAD
            for slow in list(self._slow.values()):
                if slow.kind != "trickle" or now - slow.last_sent < self.trickle_every:
                    continue
                slow.trickled += 1
                try:
                    slow.sock.send(trickle[slow.trickled : slow.trickled + 1])
                    slow.last_sent = now
                except OSError:
                    self._closed(slow, b"")


# --- ordinary callers ---------------------------------------------------------------------


@dataclass
class Traffic:
    """`threads` callers, each alternating GET /healthz and POST /v1/meetings (a new booking
    of `organizer`) against `base_url` until stopped; latencies and failures by kind."""

    base_url: str
    key: str
    organizer: str
    threads: int = 4
    timeout: float = 10.0
    pause: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "post": []})
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, name=f"traffic-{i}", daemon=True)
            for i in range(self.threads)
        ]

    def start(self) -> Traffic:
        self.started = time.monotonic()
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> Traffic:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)
        self.elapsed = time.monotonic() - self.started
        return self

    def requests_per_second(self) -> float:
        done = sum(len(values) for values in self.latencies.values())
        return done / self.elapsed if self.elapsed else 0.0

    def summary(self, kind: str) -> str:
        values = self.latencies[kind]
        return (
            f"{kind} n={len(values)} p50={percentile(values, 0.5) * 1000:.0f} ms "
            f"p99={percentile(values, 0.99) * 1000:.0f} ms"
        )

    def _call(self, session: requests.Session, kind: str, send: Callable[[], requests.Response]):
        started = time.perf_counter()
        try:
            response = send()
        except requests.RequestException as error:
            with self._lock:
                self.failures.append(f"{kind}: {type(error).__name__}")
            return
        took = time.perf_counter() - started
        with self._lock:
            if 200 <= response.status_code < 300:
                self.latencies[kind].append(took)
            else:
                self.failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

    def _run(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.key}"}
        while not self._stop.is_set():
            self._call(
                session,
                "healthz",
                lambda: session.get(f"{self.base_url}/healthz", timeout=self.timeout),
            )
            body = {"bookingId": f"load-{uuid.uuid4()}", "organizerId": self.organizer}
            self._call(
                session,
                "post",
                lambda body=body: session.post(
                    f"{self.base_url}/v1/meetings", json=body, headers=headers, timeout=self.timeout
                ),
            )
            self._stop.wait(self.pause)
        session.close()
