"""What can go wrong, one class per outcome a caller must tell apart.

Each error knows its HTTP status and problem type; `service.problems` renders any of them
as RFC 9457 application/problem+json in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ACCESS_POLICY_HELP = (
    "A Teams administrator must create an application access policy for this app "
    "(New-CsApplicationAccessPolicy -AppIds <client id>) and grant it to the organizer "
    "(Grant-CsApplicationAccessPolicy -PolicyName <name> -Identity <organizer>) or "
    "globally (-Global). Policy changes can take up to 30 minutes to take effect."
)


class ServiceError(Exception):
    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})


class InvalidRequest(ServiceError):
    status = 400
    slug = "invalid-request"
    title = "The request is invalid"

    def __init__(self, detail: str, errors: Mapping[str, str]) -> None:
        super().__init__(detail, extensions={"errors": dict(errors)})


class NotFound(ServiceError):
    status = 404
    slug = "not-found"
    title = "No such resource"


class MethodNotAllowed(ServiceError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class BodyTooLarge(ServiceError):
    status = 413
    slug = "body-too-large"
    title = "The request body is too large"


class UnsupportedMediaType(ServiceError):
    status = 415
    slug = "unsupported-media-type"
    title = "The body must be application/json"


class Unauthenticated(ServiceError):
    status = 401
    slug = "unauthenticated"
    title = "A valid API key is required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="meetings"'})


class OrganizerNotAllowed(ServiceError):
    status = 403
    slug = "organizer-not-allowed"
    title = "This caller may not book for this organizer"


class BookingNotFound(ServiceError):
    status = 404
    slug = "booking-not-found"
    title = "No meeting for this booking"


class BookingCancelled(BookingNotFound):
    slug = "booking-cancelled"
    title = "This booking's meeting was cancelled"


class QuotaExhausted(ServiceError):
    status = 429
    slug = "organizer-quota-exhausted"
    title = "The organizer reached this month's meeting limit"

    def __init__(
        self,
        detail: str,
        *,
        organizer_id: str,
        month: str,
        created: int,
        limit: int,
        retry_after: int,
    ) -> None:
        super().__init__(
            detail,
            extensions={
                "organizerId": organizer_id,
                "month": month,
                "created": created,
                "limit": limit,
                "retryAfterSeconds": retry_after,
            },
            headers={"Retry-After": str(retry_after)},
        )


class BookingConflict(ServiceError):
    status = 409
    slug = "booking-conflict"
    title = "This booking was provisioned with different details"

    def __init__(self, booking_id: str, fields: list[str]) -> None:
        super().__init__(
            f"Booking {booking_id!r} already has a meeting, provisioned with a different "
            f"{', '.join(fields)}. Graph would return the existing meeting unchanged, so this "
            "request was refused instead. Send the original details to get the meeting, or use "
            "a new bookingId.",
            extensions={"differingFields": fields},
        )


class GraphError(ServiceError):
    """Graph answered with an error; carries Graph's own code, message and request id."""

    def __init__(
        self,
        detail: str,
        *,
        graph_status: int,
        code: str | None,
        message: str | None,
        request_id: str | None,
        client_request_id: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            detail,
            extensions={
                "graphError": {
                    "status": graph_status,
                    "code": code,
                    "message": message,
                    "requestId": request_id,
                    "clientRequestId": client_request_id,
                }
            },
            headers=headers,
        )
        self.graph_status = graph_status


class GraphRejected(GraphError):
    status = 422
    slug = "graph-rejected"
    title = "Microsoft Graph rejected the meeting request"


class GraphAccessDenied(GraphError):
    status = 502
    slug = "graph-access-denied"
    title = "Microsoft Graph refused this app for this organizer"


class GraphUnexpected(GraphError):
    status = 502
    slug = "graph-unexpected-response"
    title = "Microsoft Graph answered in an unexpected way"


class Unavailable(ServiceError):
    """A dependency cannot answer now; the caller should retry after `retry_after` seconds."""

    status = 503
    slug = "unavailable"
    title = "A dependency is unavailable, retry later"

    def __init__(
        self,
        detail: str,
        retry_after: float,
        *,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            detail,
            extensions={**(extensions or {}), "retryAfterSeconds": seconds},
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after = seconds


class GraphUnavailable(Unavailable):
    slug = "graph-unavailable"
    title = "Microsoft Graph is unavailable or throttling, retry later"


class TokenUnavailable(Unavailable):
    slug = "token-unavailable"
    title = "The identity provider is unavailable, retry later"


class BookingBusy(Unavailable):
    slug = "booking-in-progress"
    title = "Another request for this booking is still in progress, retry later"


class StoreUnavailable(Unavailable):
    slug = "store-unavailable"
    title = "The booking store is unavailable, retry later"


class TokenRejected(ServiceError):
    status = 502
    slug = "token-rejected"
    title = "The identity provider rejected this app's credentials"

    def __init__(self, detail: str, error: str | None, codes: list[int]) -> None:
        super().__init__(detail, extensions={"tokenError": {"error": error, "codes": codes}})


class GraphTimeout(ServiceError):
    status = 504
    slug = "graph-timeout"
    title = "Microsoft Graph did not answer in time"
