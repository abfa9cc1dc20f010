"""The problem a Graph call ends in when it gets no accepted answer: Graph's own answer
that stands (400, 401, 403, 404, anything else unexpected), a budget that ran out (504 when
Graph was too slow, else 503), or an open circuit (503)."""

from __future__ import annotations

from typing import Any

import requests

from service.foundation.errors import (
    ACCESS_POLICY_HELP,
    GraphAccessDenied,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    GraphUnexpected,
    ServiceError,
)
from service.graph import telemetry
from service.graph.breaker import CircuitOpen
from service.graph.call import Call, answer_document
from service.graph.retry_policy import Failure

ACCESS_DENIED = (
    "Microsoft Graph refused to create meetings for this organizer on behalf of this app: "
    "the Teams application access policy is not granted. " + ACCESS_POLICY_HELP
)
TOKEN_REFUSED = (
    "Microsoft Graph rejected a freshly acquired token: check that the app has the "
    "OnlineMeetings.ReadWrite.All application permission with admin consent and that "
    "GRAPH_CLOUD matches the tenant's cloud."
)


def answer_error(call: Call, response: requests.Response) -> ServiceError:
    """The error for Graph's answer to a call that retrying does not change."""
    status = response.status_code
    found = answer_document(response).get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    found = error.get("innerError")
    inner: dict[str, Any] = found if isinstance(found, dict) else {}
    details: dict[str, Any] = {
        "graph_status": status,
        "code": error.get("code"),
        "message": error.get("message"),
        "request_id": response.headers.get("request-id") or inner.get("request-id"),
        "client_request_id": call.client_request_id,
    }
    telemetry.call_failed(call, status, details["code"])
    if status == 403:
        return GraphAccessDenied(ACCESS_DENIED, **details)
    if status == 404:
        return GraphRejected(call.not_found, **details)
    if status == 400:
        message = f"Microsoft Graph rejected the meeting request: {details['message']}"
        return GraphRejected(message, **details)
    if status == 401:
        return GraphUnexpected(TOKEN_REFUSED, **details)
    return GraphUnexpected(
        f"Microsoft Graph answered {status} ({details['code']}), which this service does "
        f"not expect from {call.operation}.",
        **details,
    )


def budget_exhausted(
    failure: Failure, retry_after: float, *, budget_seconds: float, client_request_id: str
) -> ServiceError:
    """The error for a call whose next attempt (or turn) would come after its budget ends;
    `failure` says why the last attempt failed, or why the turn waits."""
    if failure.reason == "timeout":
        return GraphTimeout(
            f"Microsoft Graph did not answer within the {budget_seconds:g} s budget. "
            "The meeting may or may not exist yet; retrying with the same bookingId is "
            "safe and returns the same meeting.",
            extensions={"clientRequestId": client_request_id},
        )
    details: dict[str, Any] = {"reason": failure.reason, "clientRequestId": client_request_id}
    if failure.response is not None:
        details["graphRequestId"] = failure.response.headers.get("request-id")
    return GraphUnavailable(
        f"Microsoft Graph is unavailable or throttling ({failure.reason}) and the "
        f"{budget_seconds:g} s retry budget ran out. Retrying with the same bookingId "
        "is safe.",
        retry_after=retry_after,
        extensions=details,
    )


def circuit_open(refused: CircuitOpen, threshold: int, client_request_id: str) -> ServiceError:
    return GraphUnavailable(
        f"Microsoft Graph failed {threshold} times in a row, so this instance pauses its "
        "calls to let it recover. Retrying with the same bookingId after Retry-After is safe.",
        retry_after=refused.retry_after,
        extensions={"reason": "circuit_open", "clientRequestId": client_request_id},
    )
