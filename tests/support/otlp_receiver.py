"""A local OTLP/HTTP receiver: what a Collector would get from the service, decoded.

`serving` is the endpoint: a small HTTP server on 127.0.0.1 (a thread of this process) that
takes `POST /v1/traces` with an `ExportTraceServiceRequest` protobuf (opentelemetry-proto),
as the SDK's OTLP/HTTP exporter sends it, answers as a Collector does, and hands each export
to a callback. `otlp_receiver` keeps every span for the tests; the bench's span sink
(tests/bench/span_sink.py) only counts them.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: tuple[str, ...] = ()
    start_ns: int = 0  # start_time_unix_nano, to show spans in the order they ran


@dataclass
class OtlpReceiver:
    url: str = ""  # the base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK adds /v1/traces)
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in list(self.spans) if span.trace_id == trace_id]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


def _decode(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource,
                        events=tuple(event.name for event in span.events),
                        start_ns=span.start_time_unix_nano,
                    )
                )
    return spans


ANSWER = ExportTraceServiceResponse().SerializeToString()


@contextmanager
def serving(on_export: Callable[[ExportTraceServiceRequest, int], None]) -> Iterator[str]:
    """An OTLP/HTTP endpoint on a free loopback port until the block ends, calling
    `on_export(request, size in bytes)` for each export; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a Collector offers it

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)  # protobuf's C parser
            on_export(request, len(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests and the bench print their own lines

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A receiver that keeps every span it gets, listening until the block ends."""
    receiver = OtlpReceiver()
    lock = threading.Lock()

    def keep(request: ExportTraceServiceRequest, size: int) -> None:
        spans = _decode(request)
        with lock:
            receiver.requests += 1
            receiver.spans.extend(spans)

    with serving(keep) as url:
        receiver.url = url
        yield receiver
