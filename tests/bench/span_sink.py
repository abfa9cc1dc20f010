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

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.otlp_receiver import serving


@dataclass
class SpanSink:
    url: str = ""  # the base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK adds /v1/traces)
    exports: int = 0
    spans: int = 0
    server_spans: int = 0  # one per traced request
    received_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, request: ExportTraceServiceRequest, size: int) -> None:
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
            self.received_bytes += size


@contextmanager
def span_sink() -> Iterator[SpanSink]:
    """A sink listening on a free loopback port until the block ends."""
    sink = SpanSink()
    with serving(sink.count) as url:
        sink.url = url
        yield sink
