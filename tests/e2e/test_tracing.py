"""OpenTelemetry traces, as a Collector would get them: the service under gunicorn exports
over OTLP/HTTP to a receiver in the test process (tests/support/otlp_receiver.py).

One create continues the caller's traceparent into one trace: the server span, the Redis
commands and scripts under it (with their key families, never a booking id), and one span
per Graph attempt (a 429 then a 201: two); the service's log lines of that request carry
the trace's ids. With the variables unset, or the exporter `none`, nothing is exported."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.factories import booking
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

CREATE_OR_GET = "POST /users/{id}/onlineMeetings/createOrGet"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
CLIENT = 3
# Exports every 100 ms rather than every 5 s: the worker's last spans are flushed on its
# exit anyway (gunicorn's worker_exit), which the tests wait for by stopping the service.
FAST_EXPORTS = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as started:
        yield started


def traceparent() -> tuple[str, str, str]:
    """(header, trace id, parent span id) of a sampled W3C traceparent, as a caller sends."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def log_lines(service: ServiceProcess) -> list[dict[str, object]]:
    lines = []
    for line in service.log().splitlines():
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            lines.append(found)
    return lines


def test_one_create_is_one_trace_from_the_caller_through_redis_and_each_graph_attempt(
    start_service, receiver, emulator, organizer, callers, setup
):
    service = start_service(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **FAST_EXPORTS)
    client = Client(service.url, callers["eu"].key)
    emulator.add_fault(
        target="createOrGet", status=429, retryAfter="1", count=1, organizerId=organizer
    )
    header, trace_id, caller_span = traceparent()
    body = booking(organizer)
    booking_id = body["bookingId"]

    answer = client.post(body, headers={"traceparent": header})
    assert answer.status_code == 201, answer.text
    probe_header, probe_trace, _ = traceparent()
    assert requests.get(f"{service.url}/healthz", headers={"traceparent": probe_header}).ok
    service.stop()  # its workers flush what they still hold

    spans = receiver.of_trace(trace_id)
    print_trace(spans)
    names = sorted(span.name for span in spans)
    by_id = {span.span_id: span for span in spans}
    # One server span, the child of the caller's span, the root of everything else.
    [server] = [span for span in spans if span.kind == SERVER]
    assert server.parent_span_id == caller_span
    assert server.name == "POST /v1/meetings"
    assert server.resource["service.name"] == "meeting-provisioning"
    for span in spans:
        if span is not server:
            assert span.parent_span_id in by_id, (span.name, names)
    # One span per Graph attempt: the 429, then the 201, one call's client-request-id.
    attempts = sorted(
        (span for span in spans if span.name == CREATE_OR_GET),
        key=lambda span: span.attributes["graph.retry"],
    )
    assert [span.attributes["graph.retry"] for span in attempts] == [0, 1], names
    assert [span.attributes["graph.throttled"] for span in attempts] == [True, False]
    statuses = [
        span.attributes.get("http.status_code", span.attributes.get("http.response.status_code"))
        for span in attempts
    ]
    assert statuses == [429, 201]
    assert all(span.kind == CLIENT for span in attempts)
    assert attempts[0].attributes["graph.client_request_id"] == answer_client_request_id(attempts)
    assert all(span.attributes["graph.request_id"] for span in attempts)
    assert all(
        span.attributes["http.route"] == "/users/{id}/onlineMeetings/createOrGet"
        for span in attempts
    )
    # Redis: commands and scripts, each with its keys' families.
    redis_spans = [span for span in spans if "mps.redis.key_families" in span.attributes]
    families = {
        family for span in redis_spans for family in span.attributes["mps.redis.key_families"]
    }
    assert {"booking", "lock", "quota", "graph-pace"} <= families, names
    assert any(span.name == "EVALSHA" for span in redis_spans), names
    # Never a booking id, an organizer id or a secret in any span of the trace.
    for span in spans:
        shown = json.dumps(span.attributes) + span.name
        assert booking_id not in shown, span
        assert organizer not in shown, span
        assert setup.client_secret not in shown, span
    # The service's log lines of the request carry the trace's ids.
    mine = [line for line in log_lines(service) if line.get("trace_id") == trace_id]
    assert any(line.get("message") == "POST /v1/meetings 201" for line in mine), mine
    assert any(line.get("message") == "retrying createOrGet" for line in mine), mine
    assert all(re.fullmatch(r"[0-9a-f]{16}", str(line.get("span_id"))) for line in mine)
    assert {line.get("span_id") for line in mine} <= set(by_id)
    # The exporter's own requests (requests, too) are not traced: no span feeds back.
    assert not [span for span in receiver.spans if "/v1/traces" in json.dumps(span.attributes)]
    # The platform endpoints are not traced.
    assert receiver.of_trace(probe_trace) == []
    assert not [span for span in receiver.spans if span.name.startswith("GET /healthz")]


def print_trace(spans):
    """The trace as the receiver got it, indented by parent (shown with -s)."""
    children: dict[str, list] = {}
    for span in sorted(spans, key=lambda span: span.start_ns):
        children.setdefault(span.parent_span_id, []).append(span)
    known = {span.span_id for span in spans}

    def show(span, depth):
        extra = {
            key: value
            for key, value in span.attributes.items()
            if key.startswith(("graph.", "mps.", "http.status", "http.response.status"))
        }
        print(f"{'  ' * depth}{span.name} {extra}")
        for child in children.get(span.span_id, []):
            show(child, depth + 1)

    for span in sorted(spans, key=lambda span: span.start_ns):
        if span.parent_span_id not in known:
            show(span, 0)


def answer_client_request_id(attempts):
    """The client-request-id both attempts of the call carried (one per call)."""
    [found] = {span.attributes["graph.client_request_id"] for span in attempts}
    return found


@pytest.mark.parametrize(
    "tracing",
    [{}, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "<receiver>"}],
    ids=["variables-unset", "exporter-none"],
)
def test_nothing_is_exported_unless_tracing_is_turned_on(
    start_service, receiver, organizer, callers, tracing
):
    env = {
        name: receiver.url if value == "<receiver>" else value for name, value in tracing.items()
    }
    service = start_service(**env, **FAST_EXPORTS)
    client = Client(service.url, callers["eu"].key)
    header, trace_id, _ = traceparent()

    answer = client.post(booking(organizer), headers={"traceparent": header})
    assert answer.status_code == 201, answer.text
    service.stop()

    assert receiver.requests == 0
    lines = log_lines(service)
    assert any(line.get("message") == "POST /v1/meetings 201" for line in lines)
    assert not [line for line in lines if "trace_id" in line]


def test_a_request_waiting_for_the_booking_lock_shows_the_wait(
    start_service, receiver, emulator, organizer, callers
):
    """Two requests for one booking: Graph is slow for the first, so the other one waits for
    its lock; whichever waited has a `booking lock wait` span and no Graph attempt."""
    service = start_service(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **FAST_EXPORTS)
    clients = [Client(service.url, callers["eu"].key) for _ in range(2)]
    emulator.add_fault(target="createOrGet", latencyMs=2000, count=1, organizerId=organizer)
    body = booking(organizer)
    parents = [traceparent(), traceparent()]

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(clients[0].post, body, {"traceparent": parents[0][0]})
        time.sleep(0.5)
        second = pool.submit(clients[1].post, body, {"traceparent": parents[1][0]})
        statuses = sorted(answer.result().status_code for answer in (first, second))
    assert statuses == [200, 201]
    service.stop()

    traces = [receiver.of_trace(trace_id) for _, trace_id, _ in parents]
    waited = [spans for spans in traces if any(s.name == "booking lock wait" for s in spans)]
    assert len(waited) == 1, [[span.name for span in spans] for spans in traces]
    [spans] = waited
    [wait] = [span for span in spans if span.name == "booking lock wait"]
    assert wait.attributes["mps.lock.outcome"] in ("woken", "holder_changed", "free")
    assert wait.parent_span_id in {span.span_id for span in spans}
    # Its Redis commands (the look at the holder, the blocking pop) are its children.
    assert any(span.parent_span_id == wait.span_id for span in spans)
    assert not [span for span in spans if span.name == CREATE_OR_GET]


def test_a_paced_graph_call_shows_its_wait_for_the_apps_turn(
    start_service, receiver, organizer, callers
):
    """GRAPH_RATE_LIMIT=1/5seconds: of two creates sent together, one waits for the app's
    next turn (up to 5 s, within the 20 s Graph budget), shown as a `graph pacing wait`
    span before its Graph attempt."""
    service = start_service(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, GRAPH_RATE_LIMIT="1/5seconds", **FAST_EXPORTS
    )
    clients = [Client(service.url, callers["eu"].key) for _ in range(2)]
    parents = [traceparent(), traceparent()]

    with ThreadPoolExecutor(2) as pool:
        answers = [
            pool.submit(client.post, booking(organizer), {"traceparent": header})
            for client, (header, _, _) in zip(clients, parents, strict=True)
        ]
        assert [answer.result().status_code for answer in answers] == [201, 201]
    service.stop()

    waits = [
        span
        for _, trace_id, _ in parents
        for span in receiver.of_trace(trace_id)
        if span.name == "graph pacing wait"
    ]
    assert waits, [span.name for span in receiver.spans]
    assert all(0 < span.attributes["mps.pacing.wait_seconds"] <= 5.05 for span in waits)
