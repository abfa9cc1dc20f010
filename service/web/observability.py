"""Per-request bookkeeping: the request id, one access log line, HTTP metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from service.foundation import metrics

logger = logging.getLogger("service.access")

# A caller's X-Request-ID is echoed and logged, so it must be short and printable.
# \A and \Z, not ^ and $: Python's `$` also matches before a final newline.
REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:@/+=-]{1,128}\Z")


def register(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else str(uuid.uuid4())

    @app.after_request
    def finish(response: Response) -> Response:
        request_id = g.get("request_id") or str(uuid.uuid4())
        response.headers["X-Request-ID"] = request_id
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.http_requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.http_latency.labels(route, request.method).observe(elapsed)
        if route not in ("/healthz", "/readyz", "/metrics"):  # probes would drown the log
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "latencyMs": round(elapsed * 1000, 1),
                    "replayed": response.headers.get("Idempotent-Replayed") == "true",
                },
            )
        return response
