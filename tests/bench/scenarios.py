"""Issue 11's eight scenarios, and issue 22's two (tests/bench/overhead.py). Each takes the
running `Bench` and returns its stdout line and its figures (tests/bench/report.py);
tests/bench/run.py runs them in order."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from service.storage import keys
from tests.bench import measure
from tests.bench.direct_client import SUBJECT, DirectGraphClient
from tests.bench.measure import median, percentile
from tests.bench.overhead import redis_login_entra_vs_password, tracing_on_vs_off
from tests.bench.report import Figure, at_least, at_most
from tests.bench.rig import THREADS, WORKERS, FloorProcess, Rig
from tests.bench.wrk import Request, WrkResult, run_wrk, write_requests
from tests.support.factories import booking
from tests.support.processes import workers_of
from tests.support.stack import Client, ServiceProcess

PROVISIONED = 100  # bookings the replay scenarios rotate over
CALLERS = 32  # concurrent callers of the bulk and the memory scenarios
GRAPH_RATE = 100  # createOrGet per second the emulator admits in the bulk scenario
STORM_LATENCY_MS = 200
CREATE_LATENCY_MS = 50
FILL_BATCH = 20_000
# "Flat within noise": the p50 with the most stored bookings at most this much above the
# p50 with the fewest.
FLAT_WITHIN = 1.2
KIB = 1024
WARM_UP = 5  # requests per side before a sequential comparison

# Copies of one record under keys of the records' shape, ARGV: key prefix, suffix, first
# and last number, value, TTL in ms. One script per batch keeps Redis answering others.
FILL = """
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
    redis.call('SET', ARGV[1] .. i .. ARGV[2], ARGV[5], 'PX', ARGV[6])
end
return 0
"""


@dataclass(frozen=True)
class Settings:
    """How much each scenario does; `quick()` for trying the bench out."""

    # Alternated rounds of the wrk comparisons: many short ones, so a burst of other work
    # on the shared machine spoils few of them, and both sides of a round alike.
    rounds: int = 6
    seconds: float = 2  # each wrk run
    sequential_rounds: int = 3  # ABAB rounds of scenario 3
    level_rounds: int = 3  # rounds at each level of scenario 6
    sequential: int = 100  # creates per side per round (scenario 3)
    storm: int = 500
    small_storm: int = 12
    small_storms: int = 7
    bulk: int = 2000
    memory_bookings: int = 1000
    levels: tuple[int, ...] = (10**3, 10**5, 10**6)
    starts: int = 3
    thread_counts: tuple[int, ...] = (1, 4, 8, 16)
    # Scenarios 9 and 10 (a feature on vs off): short, so the two add about a minute.
    overhead_rounds: int = 5  # alternated wrk rounds
    overhead_seconds: float = 1  # each wrk run
    overhead_create_rounds: int = 3
    overhead_creates: int = 25  # sequential creates per side per round

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            rounds=3,
            seconds=1,
            sequential_rounds=3,
            level_rounds=2,
            sequential=20,
            storm=100,
            small_storms=3,
            bulk=300,
            memory_bookings=200,
            levels=(10**3, 10**4, 10**5),
            starts=1,
            thread_counts=(1, 8),
            overhead_rounds=3,
            overhead_create_rounds=2,
            overhead_creates=8,
        )


@dataclass
class Bench:
    rig: Rig
    settings: Settings
    service: ServiceProcess
    floor: FloorProcess
    organizer: str = field(default_factory=lambda: str(uuid.uuid4()))
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.rig.caller.key

    def new_bodies(self, count: int) -> list[dict[str, Any]]:
        return [booking(self.organizer, subject=SUBJECT) for _ in range(count)]

    def provision(self, url: str, count: int = PROVISIONED) -> list[dict[str, Any]]:
        bodies = self.new_bodies(count)
        answers = measure.post_many(url, self.key, bodies, callers=8)
        failed = [a.status for a in answers if a.status != 201]
        if failed:
            raise RuntimeError(f"provisioning failed: {failed[:5]}")
        return bodies

    def timed_creates(self, client: Client, count: int) -> list[float]:
        """Seconds each of `count` new bookings took, one after another; each must be a 201."""
        latencies = []
        for body in self.new_bodies(count):
            started = time.perf_counter()
            response = client.post(body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"create answered {response.status_code}: {response.text}")
        return latencies

    def requests_file(self, name: str, requests: list[Request]) -> Path:
        return write_requests(self.rig.root / f"{name}.requests", requests)

    def replays(self, bodies: list[dict[str, Any]], name: str = "replay") -> Path:
        return self.requests_file(
            name,
            [Request("POST", "/v1/meetings", json.dumps(b, separators=(",", ":"))) for b in bodies],
        )

    def reads(self, bodies: list[dict[str, Any]]) -> Path:
        return self.requests_file(
            "read", [Request("GET", f"/v1/meetings/{b['bookingId']}") for b in bodies]
        )

    def wrk(self, url: str, requests_file: Path, seconds: float | None = None) -> WrkResult:
        return run_wrk(url, requests_file, self.key, seconds or self.settings.seconds)


Scenario = Callable[[Bench], tuple[str, list[Figure]]]


def _versus_floor(
    bench: Bench, number: int, name: str, requests_file: Path
) -> tuple[str, list[Figure]]:
    service_url, floor_url = bench.service.url, bench.floor.url
    for url in (service_url, floor_url):  # warm-up: connections, imports, caches
        bench.wrk(url, requests_file, 1)
    runs = measure.alternate(
        bench.settings.rounds,
        {
            "service": lambda: bench.wrk(service_url, requests_file),
            "floor": lambda: bench.wrk(floor_url, requests_file),
        },
    )
    sides = {
        side: (
            median(r.per_second for r in results),
            median(r.p50_ms for r in results),
            median(r.p99_ms for r in results),
            sum(r.errors for r in results),
        )
        for side, results in runs.items()
    }
    service, floor = sides["service"], sides["floor"]
    # Each round's two runs saw the same machine: the median of the rounds' ratios.
    ratios = [
        s.per_second / f.per_second for s, f in zip(runs["service"], runs["floor"], strict=True)
    ]
    ratio = median(ratios)

    def side(label: str, figures: tuple[float, float, float, int]) -> str:
        return (
            f"{label} {figures[0]:.0f} req/s (p50 {figures[1]:.1f} ms, p99 {figures[2]:.1f} ms, "
            f"{figures[3]} errors)"
        )

    line = (
        f"{number} {name} vs floor: {side('service', service)}, {side('floor', floor)}; "
        f"ratio {ratio:.2f} (target ≥ 0.9; medians of {len(ratios)} alternated rounds of "
        f"{bench.settings.seconds:g} s, ratios {' '.join(f'{r:.2f}' for r in ratios)})"
    )
    measured = (
        f"{service[0]:.0f} vs {floor[0]:.0f} req/s; p50 {service[1]:.1f} vs {floor[1]:.1f} ms; "
        f"p99 {service[2]:.1f} vs {floor[2]:.1f} ms; non-2xx/errors {service[3]} vs {floor[3]}"
    )
    score = at_least(ratio, 0.9) if service[3] == 0 else 0.0
    return line, [
        Figure(number, f"{name}: service ÷ floor", "≥ 0.9", measured, f"{ratio:.2f}×", score)
    ]


def replay_vs_floor(bench: Bench) -> tuple[str, list[Figure]]:
    return _versus_floor(bench, 1, "replay POST", bench.replays(bench.bodies))


def read_vs_floor(bench: Bench) -> tuple[str, list[Figure]]:
    return _versus_floor(bench, 2, "GET /v1/meetings/{id}", bench.reads(bench.bodies))


def create_vs_direct(bench: Bench) -> tuple[str, list[Figure]]:
    emulator = bench.rig.emulator
    emulator.add_fault(target="createOrGet", latencyMs=CREATE_LATENCY_MS)
    direct = DirectGraphClient(emulator, bench.rig.setup)
    client = Client(bench.service.url, bench.key)
    count = bench.settings.sequential

    def service_side() -> list[float]:
        return bench.timed_creates(client, count)

    def direct_side() -> list[float]:
        return [measure.timed(lambda: direct.create(bench.organizer)) for _ in range(count)]

    try:
        for _ in range(WARM_UP):  # tokens, connections, first-call costs
            client.post(bench.new_bodies(1)[0])
            direct.create(bench.organizer)
        runs = measure.alternate(
            bench.settings.sequential_rounds, {"service": service_side, "direct": direct_side}
        )
    finally:
        direct.close()
        emulator.clear_faults()
    p50 = {side: [percentile(r, 0.5) * 1000 for r in rounds] for side, rounds in runs.items()}
    p99 = {side: [percentile(r, 0.99) * 1000 for r in rounds] for side, rounds in runs.items()}
    diff50 = median(s - d for s, d in zip(p50["service"], p50["direct"], strict=True))
    diff99 = median(s - d for s, d in zip(p99["service"], p99["direct"], strict=True))
    line = (
        f"3 create path vs direct Graph client ({CREATE_LATENCY_MS} ms Graph latency, "
        f"sequential, {count} per side per round): service p50 {median(p50['service']):.1f} ms "
        f"p99 {median(p99['service']):.1f} ms, direct p50 {median(p50['direct']):.1f} ms "
        f"p99 {median(p99['direct']):.1f} ms; difference p50 {diff50:+.1f} ms (target ≤ 2), "
        f"p99 {diff99:+.1f} ms (target ≤ 5)"
    )
    figures = [
        Figure(
            3,
            f"create p{label} − direct client p{label}",
            f"≤ {target} ms",
            f"{diff:+.1f} ms ({median(values['service']):.1f} vs "
            f"{median(values['direct']):.1f} ms)",
            f"{diff:+.1f} ms",
            at_most(diff, target),
        )
        for label, diff, values, target in (("50", diff50, p50, 2), ("99", diff99, p99, 5))
    ]
    return line, figures


def duplicate_storm(bench: Bench) -> tuple[str, list[Figure]]:
    rig, settings = bench.rig, bench.settings
    second = rig.service()  # a second instance on the same Redis and emulator
    rig.emulator.add_fault(target="createOrGet", latencyMs=STORM_LATENCY_MS)
    try:
        before = measure.create_or_get_calls(rig.emulator)
        body = bench.new_bodies(1)[0]
        answers = measure.storm([bench.service.port, second.port], bench.key, body, settings.storm)
        calls = sum(measure.calls_since(before, measure.create_or_get_calls(rig.emulator)).values())
        meetings = {a.meeting_id for a in answers if a.meeting_id}
        ok = sum(1 for a in answers if 200 <= a.status < 300)
        gaps = []
        for body in bench.new_bodies(settings.small_storms):
            small = measure.storm([bench.service.port], bench.key, body, settings.small_storm)
            owners = [a for a in small if a.status == 201]
            if len(owners) != 1 or any(not 200 <= a.status < 300 for a in small):
                raise RuntimeError(f"small storm: {sorted(a.status for a in small)}")
            gaps.append((max(a.at for a in small) - owners[0].at) * 1000)
    finally:
        rig.emulator.clear_faults()
        second.stop()
    gap = median(gaps)
    line = (
        f"4 duplicate storm ({settings.storm} identical POSTs over 2 instances, Graph latency "
        f"{STORM_LATENCY_MS} ms): {calls} createOrGet calls (target 1), {len(meetings)} "
        f"distinct meetings, {ok}/{settings.storm} 2xx; small storm ({settings.small_storm} "
        f"at once, one instance): last waiter answered {gap:.0f} ms after the owner "
        f"(median of {settings.small_storms}; target ≤ 20 ms)"
    )
    all_good = len(meetings) == 1 and ok == settings.storm
    figures = [
        Figure(
            4, "storm: createOrGet calls", "exactly 1", str(calls), "", 1.0 if calls == 1 else 0.0
        ),
        Figure(
            4,
            "storm: distinct meetings, answers 2xx",
            f"1, {settings.storm}",
            f"{len(meetings)}, {ok}",
            "",
            1.0 if all_good else 0.0,
        ),
        Figure(
            4,
            "small storm: last waiter after the owner",
            "≤ 20 ms",
            f"{gap:.0f} ms (median of {settings.small_storms}: "
            f"{', '.join(f'{g:.0f}' for g in gaps)})",
            f"{gap / 20:.1f}× target",
            at_most(gap, 20),
        ),
    ]
    return line, figures


def bulk_under_throttling(bench: Bench) -> tuple[str, list[Figure]]:
    rig, count = bench.rig, bench.settings.bulk
    rig.emulator.clear_faults()
    rig.emulator.rate_limit("createOrGet", GRAPH_RATE)
    # GRAPH_RATE_LIMIT paces Graph calls across workers and replicas (a setting of issue
    # 11's work; a service without it ignores the variable).
    paced = rig.service(GRAPH_RATE_LIMIT=f"{GRAPH_RATE}/second")
    try:
        before = measure.create_or_get_calls(rig.emulator)
        bodies = bench.new_bodies(count)
        started = time.perf_counter()
        answers = measure.post_many(paced.url, bench.key, bodies, CALLERS)
        elapsed = max(a.at for a in answers) - started
        calls = measure.calls_since(before, measure.create_or_get_calls(rig.emulator))
    finally:
        rig.emulator.rate_limit("createOrGet", None)
        paced.stop()
    meetings = {a.meeting_id for a in answers if a.meeting_id}
    other = sum(1 for a in answers if not 200 <= a.status < 300)
    created = calls.get("201", 0)
    duplicates = created - len(meetings)
    rate = len(meetings) / elapsed
    ratio = rate / GRAPH_RATE
    throttled = calls.get("429", 0)
    line = (
        f"5 bulk under throttling ({count} new bookings, {CALLERS} callers, Graph admits "
        f"R = {GRAPH_RATE}/s): {rate:.1f} meetings/s = {ratio:.2f} R (target ≥ 0.9) in "
        f"{elapsed:.1f} s, {other} non-2xx (target 0), {count} bookings / {len(meetings)} "
        f"distinct meetings / {created} createOrGet 201s ({duplicates} duplicates), "
        f"{throttled} createOrGet 429s"
    )
    figures = [
        Figure(
            5,
            "bulk: meetings/s ÷ R",
            "≥ 0.9",
            f"{rate:.1f}/s in {elapsed:.1f} s",
            f"{ratio:.2f}×",
            at_least(ratio, 0.9),
        ),
        Figure(5, "bulk: answers other than 2xx", "0", str(other), "", 1.0 if other == 0 else 0.0),
        Figure(
            5,
            "bulk: duplicates (createOrGet 201s − distinct meetings)",
            "0",
            f"{duplicates} ({count} bookings, {len(meetings)} meetings, {created} 201s, "
            f"{throttled} 429s)",
            "",
            1.0 if duplicates == 0 else 0.0,
        ),
    ]
    return line, figures


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _fill(
    client: redis.Redis, caller_id: str, record: bytes, ttl_ms: int, first: int, last: int
) -> None:
    """Copies of `record` under keys of the service's shape, numbered first..last."""
    prefix, suffix = keys.booking(caller_id, "\0").split("\0")
    fill = client.register_script(FILL)
    for start in range(first, last + 1, FILL_BATCH):
        end = min(last, start + FILL_BATCH - 1)
        fill(args=[f"{prefix}fill-", suffix, start, end, record, ttl_ms])


def cost_as_work_grows(bench: Bench) -> tuple[str, list[Figure]]:
    rig, settings = bench.rig, bench.settings
    # Memory per booking: N real bookings through the service, on the main Redis.
    main_bytes = redis.Redis(host="127.0.0.1", port=rig.redis_server.port)
    # Warm up first at the same concurrency: Redis counts its clients' buffers in
    # used_memory, and the connections the service opens for CALLERS concurrent requests
    # (once, whatever the number of bookings) would otherwise be charged to the bookings.
    measure.post_many(bench.service.url, bench.key, bench.new_bodies(2 * CALLERS), CALLERS)
    before = _used_memory(main_bytes)
    bench_bodies = bench.new_bodies(settings.memory_bookings)
    measure.post_many(bench.service.url, bench.key, bench_bodies, CALLERS)
    per_booking = (_used_memory(main_bytes) - before) / settings.memory_bookings
    # Replay p50 as the store grows: a Redis of its own, so the other scenarios never see
    # the copies, with PROVISIONED real bookings and then copies of one real record.
    server = rig.start_redis("redis-growing")
    instance = rig.service(REDIS_URL=server.url)
    client = redis.Redis(host="127.0.0.1", port=server.port)
    # Each level's runs alternate with runs of the main instance (its own store unchanged),
    # and the growth is judged on the ratio of the two p50s: the shared machine's drift
    # between levels then cancels out.
    reference = bench.replays(bench.bodies)
    p50s: list[float] = []
    relative: list[float] = []
    fills: list[str] = []
    try:
        bodies = bench.provision(instance.url)
        requests_file = bench.requests_file(
            "replay-growing",
            [Request("POST", "/v1/meetings", json.dumps(b, separators=(",", ":"))) for b in bodies],
        )
        real = keys.booking(rig.caller.id, bodies[0]["bookingId"])
        record, ttl_ms = client.get(real), int(client.pttl(real))
        assert isinstance(record, bytes)
        stored = PROVISIONED
        bench.wrk(instance.url, requests_file, 1)  # warm-up
        for level in settings.levels:
            started = time.perf_counter()
            _fill(client, rig.caller.id, record, ttl_ms, stored, level - 1)
            fills.append(f"{level - stored:,} in {time.perf_counter() - started:.1f} s")
            stored = level
            runs = measure.alternate(
                settings.level_rounds,
                {
                    "growing": lambda: bench.wrk(instance.url, requests_file),
                    "reference": lambda: bench.wrk(bench.service.url, reference),
                },
            )
            p50s.append(median(r.p50_ms for r in runs["growing"]))
            relative.append(
                median(
                    g.p50_ms / r.p50_ms
                    for g, r in zip(runs["growing"], runs["reference"], strict=True)
                )
            )
        key_count = client.dbsize()
    finally:
        instance.stop()
        server.stop()  # gives its memory back before the next scenarios
    flat = relative[-1] / relative[0]
    levels = " / ".join(f"{level:,}" for level in settings.levels)
    values = " / ".join(f"{p:.1f}" for p in p50s)
    relatives = " / ".join(f"{r:.2f}" for r in relative)
    line = (
        f"6 cost as the work grows: replay p50 {values} ms with {levels} stored bookings, "
        f"{relatives} × the p50 of a reference instance alternated with it (last ÷ first "
        f"{flat:.2f}, target flat); copies written with Lua batches: "
        f"{', '.join(fills)} ({key_count:,} keys at the end); Redis memory {per_booking:.0f} bytes "
        f"per booking over {settings.memory_bookings} created (target ≤ 1 KiB)"
    )
    figures = [
        Figure(
            6,
            f"replay p50 with {levels} stored bookings",
            f"flat (last ≤ {FLAT_WITHIN}× first, against a reference)",
            f"p50 {values} ms; ÷ reference instance's p50 {relatives}",
            f"{flat:.2f}×",
            FLAT_WITHIN / flat,
        ),
        Figure(
            6,
            "Redis memory per stored booking",
            "≤ 1 KiB",
            f"{per_booking:.0f} bytes (used_memory delta over {settings.memory_bookings})",
            f"{per_booking / KIB:.2f} KiB",
            at_most(per_booking, KIB),
        ),
    ]
    return line, figures


def footprint(bench: Bench) -> tuple[str, list[Figure]]:
    memories = [measure.memory(pid) for pid in workers_of(bench.service)]
    rss = [found["VmRSS"] for found in memories]
    pss = [found["Pss"] for found in memories]
    ready = [bench.rig.time_to_ready() for _ in range(bench.settings.starts)]
    worst, start = max(rss), median(ready)
    line = (
        f"7 footprint: worker RSS {', '.join(f'{r:.1f}' for r in rss)} MiB (Pss "
        f"{', '.join(f'{p:.1f}' for p in pss)}) after the scenarios above (target ≤ 60); "
        f"start to /readyz 200 {start:.2f} s (median of "
        f"{len(ready)}: {', '.join(f'{r:.2f}' for r in ready)}; target ≤ 1 s)"
    )
    figures = [
        Figure(
            7,
            "RSS per worker (largest)",
            "≤ 60 MiB",
            f"{worst:.1f} MiB VmRSS (Pss {max(pss):.1f} MiB)",
            "",
            at_most(worst, 60),
        ),
        Figure(
            7,
            "start to /readyz 200",
            "≤ 1 s",
            f"{start:.2f} s (median of {len(ready)})",
            "",
            at_most(start, 1),
        ),
    ]
    return line, figures


def _median_run(runs: list[WrkResult]) -> WrkResult:
    """The run of median throughput (its own percentiles with it); errors of all runs."""
    chosen = sorted(runs, key=lambda r: r.per_second)[len(runs) // 2]
    return dataclasses.replace(chosen, errors=sum(r.errors for r in runs))


def workers_and_threads(bench: Bench) -> tuple[str, list[Figure]]:
    requests_file = bench.replays(bench.bodies)
    # Every setting up at once, their runs alternated round by round (the machine's drift
    # falls on all alike); the median of each setting's runs.
    instances = {t: bench.rig.service(threads=t) for t in bench.settings.thread_counts}
    try:
        for instance in instances.values():
            bench.wrk(instance.url, requests_file, 1)  # warm-up
        runs = measure.alternate(
            bench.settings.rounds // 2,
            {
                t: (lambda url=instance.url: bench.wrk(url, requests_file))
                for t, instance in instances.items()
            },
        )
    finally:
        for instance in instances.values():
            instance.stop()
    results = {t: _median_run(r) for t, r in runs.items()}
    reference = results.get(THREADS)

    def kind(threads: int) -> str:
        # service/gunicorn_conf.py picks the sync worker for one thread.
        return "sync" if threads == 1 else "gthread"

    line = (
        "8 workers and threads (replay, wrk 2 × 32): "
        + "; ".join(
            f"{WORKERS} × {t} {kind(t)} {r.per_second:.0f} req/s p50 {r.p50_ms:.1f} ms "
            f"p99 {r.p99_ms:.1f} ms ({r.errors} errors)"
            for t, r in results.items()
        )
        + " (gevent not measured)"
    )
    figures = [
        Figure(
            8,
            f"replay, {WORKERS} workers × {t} threads ({kind(t)})",
            "—",
            f"{r.per_second:.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
            f"{r.errors} errors",
            f"{r.per_second / reference.per_second:.2f}× of {WORKERS} × {THREADS}"
            if reference
            else "",
            value=r.per_second,
        )
        for t, r in results.items()
    ]
    return line, figures


SCENARIOS: dict[int, Scenario] = {
    1: replay_vs_floor,
    2: read_vs_floor,
    3: create_vs_direct,
    4: duplicate_storm,
    5: bulk_under_throttling,
    6: cost_as_work_grows,
    7: footprint,
    8: workers_and_threads,
    9: tracing_on_vs_off,
    10: redis_login_entra_vs_password,
}
