"""Scenarios 9 and 10 (issue 22): what a feature costs, as ratios of two service instances
that differ only in it, up side by side in the same run and measured in alternated rounds.

Each is measured twice: replays (wrk, as scenarios 1 and 2: the ratio of each round's
req/s and of its p50, the median over the rounds) and new bookings (sequential creates
with the emulator's createOrGet held at a fixed latency, as scenario 3: the ratio of each
round's p50). The figures are informational: measured, not asserted.

9. Tracing on (every request sampled, spans exported over OTLP/HTTP to a receiver on
   127.0.0.1, tests/bench/span_sink.py) vs off (no OTEL_* variable).
10. REDIS_AUTH=entra vs password, both through the emulator's Entra-only Redis front (TLS,
    graph_emulator.redis_front) before a redis-server of their own: the password side logs
    in with a token of the same identity fetched once by the bench and put in REDIS_URL as
    user and password, so both pay the same TLS and the same front; what differs is the
    service's Entra machinery (token acquisition, the streaming credential provider redis-py
    consults, background renewal).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jwt

from tests.bench import measure
from tests.bench.measure import median, percentile
from tests.bench.report import Figure
from tests.bench.span_sink import span_sink
from tests.bench.wrk import WrkResult
from tests.support.emulator import EmulatorHandle, start_emulator
from tests.support.metrics import scrape
from tests.support.stack import Client, ServiceProcess

if TYPE_CHECKING:  # scenarios.py imports this module for its SCENARIOS
    from tests.bench.scenarios import Bench

GRAPH_LATENCY_MS = 50  # createOrGet's latency during the create comparisons, as scenario 3's
REDIS_SCOPE = "https://redis.azure.com/.default"
NO_TARGET = "none (measured, not asserted)"
WARM_UP = 5  # creates per side before the create comparison


@dataclass(frozen=True)
class Comparison:
    """The alternated rounds of one feature on (`on`) and off (`off`)."""

    replays: dict[str, list[WrkResult]]
    creates: dict[str, list[list[float]]]  # each round's latencies, seconds


def compare(
    bench: Bench, emulator: EmulatorHandle, on: ServiceProcess, off: ServiceProcess, replays: Path
) -> Comparison:
    settings = bench.settings
    urls = {"on": on.url, "off": off.url}
    for url in urls.values():  # warm-up: connections, imports, caches
        bench.wrk(url, replays, 1)
    wrk_runs = measure.alternate(
        settings.overhead_rounds,
        {
            side: partial(bench.wrk, url, replays, settings.overhead_seconds)
            for side, url in urls.items()
        },
    )
    clients = {side: Client(url, bench.key) for side, url in urls.items()}

    emulator.add_fault(target="createOrGet", latencyMs=GRAPH_LATENCY_MS)
    try:
        for client in clients.values():  # tokens, connections, first-call costs
            bench.timed_creates(client, WARM_UP)
        create_runs = measure.alternate(
            settings.overhead_create_rounds,
            {
                side: partial(bench.timed_creates, client, settings.overhead_creates)
                for side, client in clients.items()
            },
        )
    finally:
        emulator.clear_faults()
        for client in clients.values():
            client.session.close()
    return Comparison(wrk_runs, create_runs)


def answered(service: ServiceProcess) -> int:
    """The API requests (/v1/...) the instance has answered, by its own metrics."""
    samples = scrape(service.url).get("mps_http_requests_total", [])
    return round(sum(v for labels, v in samples if labels.get("route", "").startswith("/v1")))


def figures(
    bench: Bench, number: int, name: str, on: str, off: str, found: Comparison
) -> tuple[str, list[Figure]]:
    """The stdout line's figures and the page's: req/s, replay p50 and create p50, each as
    `on` ÷ `off`, the median of the rounds' ratios."""
    settings = bench.settings
    replay_on, replay_off = found.replays["on"], found.replays["off"]
    pairs = list(zip(replay_on, replay_off, strict=True))
    rate_ratios = [a.per_second / b.per_second for a, b in pairs]
    p50_ratios = [a.p50_ms / b.p50_ms for a, b in pairs]
    create_p50 = {
        side: [percentile(r, 0.5) * 1000 for r in rounds] for side, rounds in found.creates.items()
    }
    create_pairs = list(zip(create_p50["on"], create_p50["off"], strict=True))
    create_ratio = median(a / b for a, b in create_pairs)
    create_diff = median(a - b for a, b in create_pairs)

    def replay_side(results: list[WrkResult]) -> tuple[float, float, float, int]:
        return (
            median(r.per_second for r in results),
            median(r.p50_ms for r in results),
            median(r.p99_ms for r in results),
            sum(r.errors for r in results),
        )

    a, b = replay_side(replay_on), replay_side(replay_off)
    rounds = (
        f"medians of {len(pairs)} alternated rounds of {settings.overhead_seconds:g} s, "
        f"req/s ratios {' '.join(f'{r:.2f}' for r in rate_ratios)}"
    )
    creates = (
        f"Graph at {GRAPH_LATENCY_MS} ms, {settings.overhead_creates} sequential per side "
        f"× {len(create_pairs)} rounds"
    )
    line = (
        f"{number} {name}, {on} vs {off}: replay {a[0]:.0f} vs {b[0]:.0f} req/s (p50 "
        f"{a[1]:.1f} vs {b[1]:.1f} ms, p99 {a[2]:.1f} vs {b[2]:.1f} ms, errors {a[3]} vs "
        f"{b[3]}), ratios req/s {median(rate_ratios):.2f} p50 {median(p50_ratios):.2f} "
        f"({rounds}); create p50 {median(create_p50['on']):.1f} vs "
        f"{median(create_p50['off']):.1f} ms, ratio {create_ratio:.2f} ({create_diff:+.1f} ms; "
        f"{creates})"
    )
    return line, [
        Figure(
            number,
            f"{name}: replay req/s, {on} ÷ {off}",
            NO_TARGET,
            f"{a[0]:.0f} vs {b[0]:.0f} req/s; non-2xx/errors {a[3]} vs {b[3]} ({rounds})",
            f"{median(rate_ratios):.2f}×",
        ),
        Figure(
            number,
            f"{name}: replay p50, {on} ÷ {off}",
            NO_TARGET,
            f"{a[1]:.1f} vs {b[1]:.1f} ms (p99 {a[2]:.1f} vs {b[2]:.1f} ms)",
            f"{median(p50_ratios):.2f}×",
        ),
        Figure(
            number,
            f"{name}: create p50, {on} ÷ {off}",
            NO_TARGET,
            f"{median(create_p50['on']):.1f} vs {median(create_p50['off']):.1f} ms "
            f"({create_diff:+.1f} ms; {creates})",
            f"{create_ratio:.2f}×",
        ),
    ]


def tracing_on_vs_off(bench: Bench) -> tuple[str, list[Figure]]:
    rig = bench.rig
    with span_sink() as sink, ExitStack() as stopping:
        traced = rig.service(
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
            OTEL_TRACES_SAMPLER="always_on",  # every request, whatever its traceparent
        )
        stopping.callback(traced.stop)
        untraced = stopping.enter_context(_stopped(rig.service()))
        found = compare(bench, rig.emulator, traced, untraced, bench.replays(bench.bodies))
        requests = answered(traced)
        traced.stop()  # its workers export what is still queued as they exit
        untraced.stop()
    line, figures_found = figures(bench, 9, "tracing", "on", "off", found)
    coverage = sink.server_spans / requests if requests else 0.0
    exported = (
        f"{sink.server_spans} server spans for {requests} requests answered, {sink.spans} spans "
        f"in {sink.exports} exports ({sink.received_bytes / 2**20:.1f} MiB)"
    )
    figures_found.append(
        Figure(
            9,
            "tracing: server spans received ÷ requests answered (traced instance)",
            "none (1: every request sampled and exported)",
            exported,
            f"{coverage:.2f}",
        )
    )
    return f"{line}; receiver got {exported}", figures_found


def redis_login_entra_vs_password(bench: Bench) -> tuple[str, list[Figure]]:
    rig = bench.rig
    with ExitStack() as stopping:
        backend = rig.start_redis("redis-entra")
        stopping.callback(backend.stop)  # its memory back before the next scenario
        emulator = stopping.enter_context(
            start_emulator(rig.root, rig.setup.config, redis_backend_port=backend.port)
        )
        front = f"127.0.0.1:{emulator.redis_front_port}/0"
        common = {"REDIS_CA_BUNDLE": emulator.ca_bundle}
        token = emulator.get_token(
            rig.setup.tenant_id, rig.setup.client_id, rig.setup.client_secret, REDIS_SCOPE
        )
        object_id = jwt.decode(token, options={"verify_signature": False})["oid"]
        login = f"{quote(object_id, safe='')}:{quote(token, safe='')}"
        entra = stopping.enter_context(
            _stopped(
                rig.service(
                    base=rig.environment(
                        emulator, f"rediss://{front}", REDIS_AUTH="entra", **common
                    )
                )
            )
        )
        password = stopping.enter_context(
            _stopped(
                rig.service(base=rig.environment(emulator, f"rediss://{login}@{front}", **common))
            )
        )
        bodies = bench.provision(entra.url)
        found = compare(
            bench, emulator, entra, password, bench.replays(bodies, "replay-redis-login")
        )
        front_stats = _front_stats(emulator)
    line, figures_found = figures(bench, 10, "Redis login", "entra", "password", found)
    refused = front_stats["refused"] or "none"
    return (
        f"{line}; the front: {front_stats['connections']} connections, "
        f"{front_stats['logins']} logins, refused {refused}",
        figures_found,
    )


@contextmanager
def _stopped(process: ServiceProcess) -> Iterator[ServiceProcess]:
    """Stopped when the block ends (the rig would stop it only at the end of the run)."""
    try:
        yield process
    finally:
        process.stop()


def _front_stats(emulator: EmulatorHandle) -> dict[str, Any]:
    answer = emulator.session().get(f"{emulator.base_url}/_emulator/redis-front", timeout=5)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found
