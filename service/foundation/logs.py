"""JSON log lines on stdout, each carrying the request's id, caller and booking, and the
trace and span ids of the span it was logged in (when tracing is on)."""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "timestamp", "levelname": "level", "name": "logger"}


class RequestContext(logging.Filter):
    """Adds the current request's identifiers to every record logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.requestId = g.get("request_id")
            record.callerId = getattr(g.get("caller"), "id", None)
            record.bookingId = g.get("booking_id")
        return True


class TraceContext(logging.Filter):
    """Adds `trace_id` and `span_id` (32 and 16 hex digits, as W3C traceparent and every
    tracing backend write them) of the active span, so a log line leads to its trace and a
    trace to its lines. Nothing while no span is active: tracing off, or outside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


def configure(level: str) -> None:
    """Route the root logger to stdout as JSON; idempotent, so app factories may repeat it."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(FORMAT, rename_fields=RENAMED, datefmt="%Y-%m-%dT%H:%M:%S%z")
    )
    handler.addFilter(RequestContext())
    handler.addFilter(TraceContext())
    root.handlers = [handler]
    root.setLevel(level)
    # urllib3 and MSAL log request URLs and bodies at DEBUG; keep them quiet.
    for noisy in ("urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
