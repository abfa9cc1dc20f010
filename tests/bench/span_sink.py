"""The collector of the tracing comparison (scenario 9): an OTLP/HTTP receiver on 127.0.0.1
that answers each export as a Collector does and only counts what it got.

tests/support/otlp_receiver.py decodes and keeps every span for the tests to inspect;
under wrk's load that would be tens of thousands of spans decoded attribute by attribute
in Python, on the same two cores as the services being compared. Here each export is
parsed once by protobuf's C parser and its spans counted, so the export's cost falls on
the service (its exporter thread serialising and POSTing over HTTP, with keep-alive as
with a real Collector) and little on the receiving end.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ANSWER = ExportTraceServiceResponse().SerializeToString()


@dataclass
class SpanSink:
    server: ThreadingHTTPServer
    exports: int = 0
    spans: int = 0
    server_spans: int = 0  # one per traced request
    received_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = server_spans = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans += len(scope_spans.spans)
                server_spans += sum(
                    1 for span in scope_spans.spans if span.kind == Span.SPAN_KIND_SERVER
                )
        with self.lock:
            self.exports += 1
            self.spans += spans
            self.server_spans += server_spans
            self.received_bytes += len(body)


@contextmanager
def span_sink() -> Iterator[SpanSink]:
    """A sink listening on a free loopback port until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a Collector offers it

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            sink.count(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the bench prints its own lines

    sink = SpanSink(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    sink.server.daemon_threads = True
    thread = threading.Thread(target=sink.server.serve_forever, name="span-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()
        thread.join(timeout=10)
