"""What can go wrong, one class per outcome a caller must tell apart.

Each error knows its HTTP status and problem type; `service.web.problems` renders any of them
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


# Every problem type is this prefix and a class's slug, wherever the answer is made: in
# the app (service.web.problems), in gunicorn (service.web.gunicorn_errors) and in the proxy
# (deploy/base/proxy/nginx.conf.template; tests/unit/test_errors.py compares them).
TYPE_PREFIX = "urn:meeting-provisioning:problem:"


class ServiceError(Exception):
    """The service failed unexpectedly; the error is logged under the answer's requestId."""

    status = 500
    slug = "internal-error"
    title = "Internal error"
    # Headers every answer of this class carries, beyond X-Request-ID (for the document).
    answer_headers: tuple[str, ...] = ()

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
    """Malformed JSON or invalid fields; `errors` names each field and what is wrong."""

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
    """The body is larger than MAX_BODY_BYTES; nothing was stored."""

    status = 413
    slug = "body-too-large"
    title = "The request body is too large"


class UnsupportedMediaType(ServiceError):
    """The body is not sent as application/json."""

    status = 415
    slug = "unsupported-media-type"
    title = "The body must be application/json"


class RequestTimeout(ServiceError):
    status = 408
    slug = "request-timeout"
    title = "The request was not received in time"


class RequestLineTooLong(ServiceError):
    status = 414
    slug = "request-line-too-long"
    title = "The request line is too long"


class Forbidden(ServiceError):
    """Answered by gunicorn to a request it does not accept from the sender's address."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class ExpectationFailed(ServiceError):
    status = 417
    slug = "expectation-failed"
    title = "Expectation failed"


class RequestHeaderTooLarge(ServiceError):
    status = 431
    slug = "request-header-too-large"
    title = "The request header is too large"


class NotImplementedByServer(ServiceError):
    status = 501
    slug = "not-implemented"
    title = "Not implemented"


class UpstreamUnavailable(ServiceError):
    """Answered by the proxy: gunicorn behind it could not be reached."""

    status = 502
    slug = "upstream-unavailable"
    title = "The service is not reachable"


class UpstreamTimeout(ServiceError):
    """Answered by the proxy: gunicorn did not answer within its worker timeout."""

    status = 504
    slug = "upstream-timeout"
    title = "The service did not answer in time"


class Unauthenticated(ServiceError):
    """No valid API key or Entra ID access token (`Authorization: Bearer <key or token>`); a
    rejected token is named in `WWW-Authenticate` (`error="invalid_token"`, RFC 6750)."""

    status = 401
    slug = "unauthenticated"
    title = "A valid API key is required"
    answer_headers = ("WWW-Authenticate",)

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer realm="meetings"'
        if invalid_token:
            challenge += f', error="invalid_token", error_description="{quoted(detail)}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


def quoted(text: str) -> str:
    """`text` as the inside of an RFC 9110 quoted-string (printable ASCII, no quote or
    backslash: RFC 6750 limits error_description to that)."""
    return "".join(c for c in text if 0x20 <= ord(c) < 0x7F and c not in '"\\')


class InsufficientScope(ServiceError):
    """The Entra ID token lacks the app role CALLER_APP_ROLE (`requiredRole`)."""

    status = 403
    slug = "insufficient-scope"
    title = "The access token lacks the required app role"
    answer_headers = ("WWW-Authenticate",)

    def __init__(self, detail: str, role: str) -> None:
        super().__init__(
            detail,
            extensions={"requiredRole": role},
            headers={
                "WWW-Authenticate": 'Bearer realm="meetings", error="insufficient_scope", '
                f'error_description="{quoted(detail)}", scope="{quoted(role)}"'
            },
        )


class CallerNotRegistered(ServiceError):
    """The Entra ID token is valid, but its app (`azp`/`appid`) is no CLIENTS_FILE `appId`."""

    status = 403
    slug = "caller-not-registered"
    title = "This app is not a registered caller"


class RateLimited(ServiceError):
    """This caller sent more requests than its `rateLimit`; retry after `Retry-After`."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests from this caller"
    answer_headers = ("Retry-After", "RateLimit-Policy", "RateLimit")

    def __init__(self, detail: str, *, limit: str, retry_after: int, headers: Mapping[str, str]):
        super().__init__(
            detail,
            extensions={"rateLimit": limit, "retryAfterSeconds": retry_after},
            headers={"Retry-After": str(retry_after), **headers},
        )


class OrganizerNotAllowed(ServiceError):
    """This caller may not book for this organizer (or any member of the pool)."""

    status = 403
    slug = "organizer-not-allowed"
    title = "This caller may not book for this organizer"


class BookingNotFound(ServiceError):
    """This caller provisioned no meeting for this booking."""

    status = 404
    slug = "booking-not-found"
    title = "No meeting for this booking"


class BookingCancelled(BookingNotFound):
    """The booking's meeting was cancelled; POST it again for a new one."""

    slug = "booking-cancelled"
    title = "This booking's meeting was cancelled"


class QuotaExhausted(ServiceError):
    """The organizer reached ORGANIZER_MONTHLY_LIMIT meetings this month (UTC)."""

    status = 429
    slug = "organizer-quota-exhausted"
    title = "The organizer reached this month's meeting limit"
    answer_headers = ("Retry-After",)

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
    """The booking has a meeting provisioned with other details; `differingFields` names them."""

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
    """Graph rejected the request (its 400, or 404: unknown organizer or meeting); `graphError` has
    Graph's answer."""

    status = 422
    slug = "graph-rejected"
    title = "Microsoft Graph rejected the meeting request"


class GraphAccessDenied(GraphError):
    """Graph refused this app for this organizer: no Teams application access policy."""

    status = 502
    slug = "graph-access-denied"
    title = "Microsoft Graph refused this app for this organizer"


class GraphUnexpected(GraphError):
    """Graph answered in a way the service does not expect (e.g. it refused a fresh token)."""

    status = 502
    slug = "graph-unexpected-response"
    title = "Microsoft Graph answered in an unexpected way"


class Unavailable(ServiceError):
    """A dependency cannot answer now; the caller should retry after `retry_after` seconds."""

    status = 503
    slug = "unavailable"
    title = "A dependency is unavailable, retry later"
    answer_headers = ("Retry-After",)

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
    """Graph is unavailable or throttling beyond the retry budget, or this instance's Graph circuit
    is open (`reason`)."""

    slug = "graph-unavailable"
    title = "Microsoft Graph is unavailable or throttling, retry later"


class TokenUnavailable(Unavailable):
    """Entra ID is unavailable and no valid token is held."""

    slug = "token-unavailable"
    title = "The identity provider is unavailable, retry later"


class SigningKeysUnavailable(Unavailable):
    """The tenant's token signing keys cannot be fetched and none are cached, so no Entra ID
    token can be checked (API keys still work)."""

    slug = "signing-keys-unavailable"
    title = "The identity provider's signing keys are unavailable, retry later"


class BookingBusy(Unavailable):
    """Another request for this booking is still in progress."""

    slug = "booking-in-progress"
    title = "Another request for this booking is still in progress, retry later"


class StoreUnavailable(Unavailable):
    """The booking store (Redis) is unavailable."""

    slug = "store-unavailable"
    title = "The booking store is unavailable, retry later"


class TokenRejected(ServiceError):
    """Entra ID rejected this app's credentials (or the scope: check GRAPH_CLOUD); `tokenError` has
    its answer."""

    status = 502
    slug = "token-rejected"
    title = "The identity provider rejected this app's credentials"

    def __init__(self, detail: str, error: str | None, codes: list[int]) -> None:
        super().__init__(detail, extensions={"tokenError": {"error": error, "codes": codes}})


class GraphTimeout(ServiceError):
    """Graph did not answer within the budget; retrying with the same bookingId returns the same
    meeting."""

    status = 504
    slug = "graph-timeout"
    title = "Microsoft Graph did not answer in time"
