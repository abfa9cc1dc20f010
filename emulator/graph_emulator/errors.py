"""Error bodies in the two shapes clients see: Graph's OData error and Entra's OAuth error.

Both are built in this one place so every emulated failure, real or injected, has the
shape the contract (Graph) or MSAL (Entra) expects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request

from . import times

# Graph's default code and message for a status, used when a fault names none.
GRAPH_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "An error has occurred."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Forbidden", "Forbidden"),
    404: ("ErrorItemNotFound", "The specified object was not found in the store."),
    409: ("Conflict", "Conflict"),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad Gateway"),
    503: ("ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The gateway timed out."),
}

# Entra's OAuth error, AADSTS number and text for a status, used by injected faults.
ENTRA_DEFAULTS: dict[int, tuple[str, int, str]] = {
    429: ("temporarily_unavailable", 90055, "There are too many incoming requests."),
    500: ("server_error", 90006, "The service is temporarily unavailable."),
    503: ("temporarily_unavailable", 90006, "The service is temporarily unavailable."),
    504: ("temporarily_unavailable", 90006, "The service is temporarily unavailable."),
}


class GraphError(Exception):
    """Answer this request with a Graph error (rendered by the app's error handler)."""

    def __init__(self, status: int, code: str | None = None, message: str | None = None) -> None:
        super().__init__(message or code or str(status))
        self.status = status
        self.code = code
        self.message = message


class EntraError(Exception):
    """Answer this request with an Entra OAuth error: status, error, AADSTS number, text."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message


def graph_error(status: int, code: str | None = None, message: str | None = None) -> Response:
    """A Graph error response: ``{"error": {"code", "message", "innerError": {...}}}``."""
    default_code, default_message = GRAPH_DEFAULTS.get(status, ("UnknownError", "Error"))
    body: dict[str, Any] = {
        "error": {
            "code": code or default_code,
            "message": message or default_message,
            "innerError": {
                "date": times.inner_error_date(),
                "request-id": g.request_id,
                "client-request-id": g.client_request_id,
            },
        }
    }
    response = jsonify(body)
    response.status_code = status
    return response


def entra_error(
    status: int, error: str | None = None, code: int | None = None, message: str | None = None
) -> Response:
    """An Entra token-endpoint error, e.g. AADSTS7000215 invalid_client.

    The description carries the Trace ID / Correlation ID / Timestamp suffix real
    Entra appends; ``correlation_id`` echoes the client-request-id MSAL sends.
    """
    default_error, default_code, default_message = ENTRA_DEFAULTS.get(
        status, ("invalid_request", 90000, "The request could not be processed.")
    )
    error = error or default_error
    code = default_code if code is None else code
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {message or default_message} Trace ID: {g.request_id}"
        f" Correlation ID: {g.client_request_id} Timestamp: {stamp}"
    )
    response = jsonify(
        {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": g.request_id,
            "correlation_id": g.client_request_id,
            "error_uri": f"{request.host_url.rstrip('/')}/error?code={code}",
        }
    )
    response.status_code = status
    return response
