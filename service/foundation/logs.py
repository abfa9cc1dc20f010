"""JSON log lines on stdout, each carrying the request's id, caller and booking."""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
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
    root.handlers = [handler]
    root.setLevel(level)
    # urllib3 and MSAL log request URLs and bodies at DEBUG; keep them quiet.
    for noisy in ("urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
