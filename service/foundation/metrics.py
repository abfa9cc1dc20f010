"""Prometheus metrics. Under gunicorn they are shared across workers through
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode); without it, the
process-local default registry is used (tests, `flask run`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as REGISTRY_DEFAULT

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)

http_requests = Counter(
    "mps_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
http_latency = Histogram(
    "mps_http_request_duration_seconds",
    "HTTP request latency",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
graph_calls = Counter(
    "mps_graph_calls_total", "Graph HTTP calls, by operation and status", ["operation", "status"]
)
graph_latency = Histogram(
    "mps_graph_call_duration_seconds",
    "Graph HTTP call latency (one attempt)",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
graph_retries = Counter("mps_graph_retries_total", "Graph attempts retried", ["reason"])
graph_retry_after = Counter(
    "mps_graph_retry_after_seconds_total", "Seconds Graph asked us to wait (Retry-After)"
)
graph_pacing = Counter(
    "mps_graph_pacing_total",
    "Graph calls through the shared pacer (service.graph.pacing), by outcome: paced (a slot "
    "of GRAPH_RATE_LIMIT, or no wait), gated (waited for Graph's Retry-After to another "
    "call), refused (the turn came after the budget: 503), unpaced (Redis unavailable)",
    ["outcome"],
)
graph_pacing_wait = Histogram(
    "mps_graph_pacing_wait_seconds",
    "How long Graph calls waited for their turn (pace or throttle gate) before being sent",
    buckets=(0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
graph_gate_closed = Counter(
    "mps_graph_throttle_gate_closed_total",
    "Times a Graph 429 or 503 with Retry-After moved the app's shared throttle gate forwards",
)
meetings = Counter(
    "mps_meetings_total",
    "Provisioning outcomes: created/existing (from Graph), replayed (from the store), "
    "conflict (409), waited (single-flight followers), options_applied (pending options "
    "applied by a later POST), rescheduled, cancelled",
    ["outcome"],
)
options_pending = Counter(
    "mps_meeting_options_pending_total",
    "Bookings whose options PATCH after createOrGet failed past its budget (left pending for "
    "the caller's retry)",
)
lobby_close_failures = Counter(
    "mps_lobby_close_failures_total",
    "Cancels whose closing PATCH (lobby and presenters to the organizer) failed; the DELETE "
    "went ahead",
)
tokens = Counter("mps_token_acquisitions_total", "App tokens handed out, by source", ["source"])
token_failures = Counter("mps_token_failures_total", "Token acquisitions that failed", ["reason"])
graph_circuit_state = Gauge(
    "mps_graph_circuit_state",
    "Graph circuit breaker of each worker: 0 closed, 1 half-open, 2 open",
    multiprocess_mode="liveall",
)
graph_circuit_opened = Counter("mps_graph_circuit_opened_total", "Times a Graph circuit opened")
graph_circuit_rejections = Counter(
    "mps_graph_circuit_rejections_total", "Graph calls refused at once by an open circuit"
)
draining = Gauge(
    "mps_draining",
    "1 once the master got SIGTERM and is in its pre-stop delay (readiness answers 503)",
    multiprocess_mode="max",
)
quota_rejections = Counter(
    "mps_organizer_quota_rejections_total", "Bookings refused (429): organizer at its monthly limit"
)
# Gauges computed when scraped (service.core.quota.QuotaCollector), not kept per process.
ORGANIZER_MEETINGS_MONTH = (
    "mps_organizer_meetings_month",
    "Meetings this service created for an organizer in the current UTC month",
)
ORGANIZER_MONTHLY_LIMIT = (
    "mps_organizer_monthly_limit",
    "Meetings per organizer per UTC month before the service answers 429 (0: off)",
)
SCRAPE_TIME_GAUGES = (ORGANIZER_MEETINGS_MONTH[0], ORGANIZER_MONTHLY_LIMIT[0])
rate_limited = Counter(
    "mps_caller_rate_limited_total",
    "Requests refused (429): the caller over its rateLimit",
    ["caller"],
)
rate_limit_unenforced = Counter(
    "mps_caller_rate_limit_unenforced_total",
    "Requests let through unchecked because Redis could not count them",
)
caller_tokens_rejected = Counter(
    "mps_caller_tokens_rejected_total", "Callers' Entra ID tokens refused, by reason", ["reason"]
)
caller_key_fetches = Counter(
    "mps_caller_signing_key_fetches_total",
    "Fetches of the callers' tenants' signing keys (OpenID metadata and JWKS), by outcome",
    ["outcome"],
)
cae_challenges = Counter(
    "mps_graph_claims_challenges_total",
    "Graph 401s with a CAE claims challenge, answered by a token with those claims",
)
redis_token_renewals = Counter(
    "mps_redis_token_renewals_total",
    "Entra ID tokens for Redis (REDIS_AUTH=entra) asked for, by outcome: renewed, failed",
    ["outcome"],
)
redis_reauthentications = Counter(
    "mps_redis_reauthentications_total",
    "Renewed Redis tokens handed to the connection pools (AUTH on every connection)",
)
redis_up = Gauge(
    "mps_redis_up", "1 if the last Redis command succeeded, else 0", multiprocess_mode="liveall"
)
_redis_up_written: int | None = None
_redis_up_lock = threading.Lock()


def report_redis(up: bool) -> None:
    """Set mps_redis_up after a Redis command, writing only when it changes: every request
    runs Redis commands, and each write to a multiprocess gauge takes a lock and checks the
    process id."""
    global _redis_up_written
    value = int(up)
    if value == _redis_up_written:
        return
    with _redis_up_lock:
        if value != _redis_up_written:
            redis_up.set(value)
            _redis_up_written = value


def _forget_redis_up() -> None:
    # A forked worker has its own series (multiprocess mode): it must write its first value.
    global _redis_up_written
    _redis_up_written = None


os.register_at_fork(after_in_child=_forget_redis_up)


# Series an alert counts with increase() must exist at 0 before their first event, or the
# first event is invisible to it (Prometheus sees the series appear at 1, not grow).
KNOWN_SERIES: tuple[tuple[Counter, dict[str, str]], ...] = (
    *((graph_calls, {"operation": "createOrGet", "status": s}) for s in ("403", "429", "503")),
    *((graph_retries, {"reason": reason}) for reason in ("429", "503", "timeout")),
    *((token_failures, {"reason": reason}) for reason in ("rejected", "server_error")),
    *((meetings, {"outcome": outcome}) for outcome in ("created", "conflict", "waited")),
    # At 0 from the start, so an alert's increase() sees the first failed renewal.
    *((redis_token_renewals, {"outcome": outcome}) for outcome in ("renewed", "failed")),
)


def declare_known_series() -> None:
    for counter, labels in KNOWN_SERIES:
        counter.labels(**labels)


def render(*, multiprocess_mode: bool, extra: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The exposition of every worker (multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set,
    which prometheus-client itself also reads when this module creates the metrics) or of
    this process, plus `extra` collectors, which compute their values at scrape time (see
    service.core.quota.QuotaCollector)."""
    if multiprocess_mode:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(REGISTRY_DEFAULT)
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
