"""The metrics and log lines of Graph calls, in one place: each attempt's answer, each
retry, the claims challenges answered, the calls an open circuit refused, the answers that
end a call."""

from __future__ import annotations

import logging
import time

from service.foundation import metrics
from service.graph.call import Call

# The logger the Graph client always logged with: log queries and alerts select by it.
logger = logging.getLogger("service.graph.client")


def answered(call: Call, started: float, outcome: str, request_id: str | None = None) -> None:
    """One attempt ended (`started`: its time.perf_counter()); `outcome`: the HTTP status,
    or the transport failure's name."""
    elapsed = time.perf_counter() - started
    metrics.graph_calls.labels(operation=call.operation, status=outcome).inc()
    metrics.graph_latency.labels(operation=call.operation).observe(elapsed)
    logger.info(
        "graph %s answered",
        call.operation,
        extra={
            "graphStatus": outcome,
            "clientRequestId": call.client_request_id,
            "graphRequestId": request_id,
            "latencyMs": round(elapsed * 1000, 1),
        },
    )


def retrying(call: Call, reason: str, retry_after: float | None, delay: float) -> None:
    metrics.graph_retries.labels(reason=reason).inc()
    if retry_after is not None:
        metrics.graph_retry_after.inc(retry_after)
    logger.info(
        "retrying %s",
        call.operation,
        extra={
            "reason": reason,
            "delay": round(delay, 3),
            "clientRequestId": call.client_request_id,
        },
    )


def claims_challenge_answered() -> None:
    metrics.cae_challenges.inc()
    logger.info("graph sent a claims challenge (CAE), answering it once")


def circuit_refused(client_request_id: str, failures: int) -> None:
    logger.warning(
        "graph circuit open, call refused",
        extra={"clientRequestId": client_request_id, "failures": failures},
    )


def call_failed(call: Call, status: int, code: object) -> None:
    """Graph's answer ends the call with an error."""
    logger.warning(
        "graph %s failed",
        call.operation,
        extra={
            "graphStatus": status,
            "graphCode": code,
            # An administrator needs it to grant the access policy (403).
            "organizerId": call.organizer_id,
        },
    )
