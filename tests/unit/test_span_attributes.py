"""What the hooks let a span say: key families and commands for Redis, route templates and
Graph's ids for HTTP; never a key, an argument, an id in a path or a query string. Spans of
an SDK provider of the test's own, kept in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from requests import PreparedRequest, Request, Response

from service.graph import attempt_spans
from service.storage import keys, redis_spans

pytestmark = pytest.mark.unit

CALLER, BOOKING, ORGANIZER = "booking-eu", "room-42:2026-11-23T09:00", "8b081ef6-4792"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test")
    provider.shutdown()


def one_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


@pytest.mark.parametrize(
    ("key", "family"),
    [
        (keys.booking(CALLER, BOOKING), "booking"),
        (keys.lock(CALLER, BOOKING), "lock"),
        (keys.wake(CALLER, BOOKING, "token").encode(), "wake"),
        (keys.quota_counter(ORGANIZER, "2026-11"), "quota"),
        (keys.legacy_booking(CALLER, BOOKING), "booking"),
        (keys.rate_limit(CALLER, 120, 60), "ratelimit"),
        (keys.graph_pace("app"), "graph-pace"),
        (keys.graph_gate("app"), "graph-gate"),
        ("mps:v1:unknown:x", None),
        ("room-42", None),
        (b"\x78\x9c" * 1000, None),
        (42, None),
    ],
)
def test_a_key_shows_its_family_and_nothing_else(key, family):
    assert keys.family_of(key) == family


def test_a_redis_span_shows_the_command_and_families_never_keys_or_arguments(tracer, exporter):
    args = (
        "EVALSHA",
        "ab" * 20,
        2,
        keys.lock(CALLER, BOOKING),
        keys.waiting(CALLER, BOOKING),
        5000,
    )
    with tracer.start_as_current_span("EVALSHA") as span:
        # What an instrumentation that did not sanitise would have written.
        span.set_attribute("db.statement", " ".join(map(str, args)))
        redis_spans.request_hook(span, None, args, {})
    attributes = dict(one_span(exporter).attributes or {})
    assert attributes["db.statement"] == "EVALSHA"
    assert "db.query.text" not in attributes
    assert attributes["mps.redis.key_families"] == ("lock", "waiting")
    assert BOOKING not in repr(attributes) and CALLER not in repr(attributes)


def prepared(method: str, url: str) -> PreparedRequest:
    return Request(method, url).prepare()


def answer(status: int, request_id: str) -> Response:
    response = Response()
    response.status_code = status
    response.headers["request-id"] = request_id
    return response


def test_a_graph_attempt_span_shows_the_route_template_and_the_ids_of_the_call(tracer, exporter):
    root = "https://graph.microsoft.com/v1.0"
    url = f"{root}/users/{ORGANIZER}/onlineMeetings/createOrGet"
    attempt = attempt_spans.Attempt(
        "createOrGet", "/users/{id}/onlineMeetings/createOrGet", root, "c-1", 1
    )
    with attempt_spans.sending(attempt), tracer.start_as_current_span("POST") as span:
        span.set_attribute("http.url", url)
        attempt_spans.request_hook(span, prepared("POST", url))
        attempt_spans.response_hook(span, None, answer(429, "r-1"))
    finished = one_span(exporter)
    attributes = dict(finished.attributes or {})
    assert finished.name == "POST /users/{id}/onlineMeetings/createOrGet"
    assert attributes["http.url"] == f"{root}/users/{{id}}/onlineMeetings/createOrGet"
    assert "url.full" not in attributes  # the instrumentation's own name is kept
    assert attributes["graph.client_request_id"] == "c-1"
    assert attributes["graph.retry"] == 1
    assert attributes["graph.request_id"] == "r-1"
    assert attributes["graph.throttled"] is True
    assert ORGANIZER not in repr(attributes)


def test_another_request_keeps_its_url_without_query_or_user(tracer, exporter):
    url = "https://user:pw@login.example.com/tenant/oauth2/v2.0/token?client_secret=s#frag"
    with tracer.start_as_current_span("POST") as span:
        span.set_attribute("url.full", url)
        attempt_spans.request_hook(span, prepared("POST", url))
        attempt_spans.response_hook(span, None, answer(200, "r-2"))
    finished = one_span(exporter)
    attributes = dict(finished.attributes or {})
    assert finished.name == "POST"
    assert attributes == {"url.full": "https://login.example.com/tenant/oauth2/v2.0/token"}


def test_outside_a_sending_block_no_attempt_is_current() -> None:
    attempt = attempt_spans.Attempt("createOrGet", "/r", "https://g", "c", 0)
    with attempt_spans.sending(attempt):
        assert attempt_spans._current.get() is attempt
    assert attempt_spans._current.get() is None


@pytest.fixture(autouse=True)
def _no_leaked_attempt() -> Iterator[None]:
    yield
    assert attempt_spans._current.get() is None
