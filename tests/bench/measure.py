"""Small measuring tools the scenarios share: percentiles, medians over rounds, sequential
and concurrent callers of the service, and what the emulator and the kernel report."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.support.emulator import EmulatorHandle
from tests.support.stack import Client

T = TypeVar("T")
K = TypeVar("K")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: a p99 of 100 samples is the 99th)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def alternate(rounds: int, sides: dict[K, Callable[[], T]]) -> dict[K, list[T]]:
    """Run each side once per round, in turn (ABABAB): drift of the machine during the run
    (other processes, a warming cache) then falls on both sides alike."""
    results: dict[K, list[T]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            results[name].append(run())
    return results


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Answer:
    status: int
    meeting_id: str | None
    at: float  # perf_counter when the answer had been read


def post_once(port: int, api_key: str, body: dict[str, Any], timeout: float = 60) -> Answer:
    """One POST /v1/meetings on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/v1/meetings",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        data = response.read()
        at = time.perf_counter()
    finally:
        connection.close()
    meeting_id = json.loads(data).get("meetingId") if response.status in (200, 201) else None
    return Answer(response.status, meeting_id, at)


def storm(ports: Sequence[int], api_key: str, body: dict[str, Any], count: int) -> list[Answer]:
    """`count` identical POSTs at once, spread over `ports` in turn: every thread connects,
    then all send together (a barrier)."""
    barrier = threading.Barrier(count)

    def one(index: int) -> Answer:
        barrier.wait(timeout=30)
        return post_once(ports[index % len(ports)], api_key, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def post_many(
    url: str, api_key: str, bodies: Sequence[dict[str, Any]], callers: int
) -> list[Answer]:
    """POST every body once, from `callers` threads with a keep-alive session each."""
    local = threading.local()

    def one(body: dict[str, Any]) -> Answer:
        if not hasattr(local, "client"):
            local.client = Client(url, api_key)
        response = local.client.post(body)
        at = time.perf_counter()
        ok = response.status_code in (200, 201)
        return Answer(response.status_code, response.json()["meetingId"] if ok else None, at)

    with concurrent.futures.ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(one, bodies))


def create_or_get_calls(emulator: EmulatorHandle) -> dict[str, int]:
    """The emulator's createOrGet answers so far, by status ("201", "200", "429", ...)."""
    calls: dict[str, int] = emulator.stats()["calls"].get("createOrGet", {})
    return calls


def calls_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {status: after[status] - before.get(status, 0) for status in after}


def load_average() -> float:
    """The kernel's 1-minute load average: how busy the shared machine was."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"no {field} in {path}")


def memory(pid: int) -> dict[str, float]:
    """A process's memory, MiB: VmRSS, RssAnon and RssFile (/proc/<pid>/status), and Pss and
    USS (private clean + dirty, /proc/<pid>/smaps_rollup). Pages shared with other
    processes count whole in VmRSS, in part in Pss, not in USS."""
    status = Path(f"/proc/{pid}/status")
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    return {
        "VmRSS": _kib(status, "VmRSS") / 1024,
        "RssAnon": _kib(status, "RssAnon") / 1024,
        "RssFile": _kib(status, "RssFile") / 1024,
        "Pss": _kib(rollup, "Pss") / 1024,
        "USS": (_kib(rollup, "Private_Clean") + _kib(rollup, "Private_Dirty")) / 1024,
    }
