"""What the span of an HTTP call to Graph or Entra ID may say.

The requests instrumentation (opentelemetry-instrumentation-requests) makes one client span
per HTTP request the process sends: each Graph attempt, each token request MSAL sends to
Entra ID, each fetch of the callers' tenants' signing keys. Its hooks, here, make those
spans say what an operator needs and nothing more:

- a Graph attempt (sent inside `sending`) is named by its method and route template
  (`POST /users/{id}/onlineMeetings/createOrGet`), never the path with the organizer's and
  meeting's ids, and carries the operation, the call's `client-request-id`, the retry
  number, Graph's `request-id` and whether Graph throttled it;
- any other request keeps its URL without query string or fragment. Bodies (a token
  request's client secret or assertion) are never recorded by the instrumentation, nor
  headers unless an operator asks for them with OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.trace import Span

# The URL's names in the old and the stable HTTP conventions.
URL_ATTRIBUTES = ("http.url", "url.full")


@dataclass(frozen=True)
class Attempt:
    operation: str  # createOrGet, updateMeeting, deleteMeeting
    route: str  # under the Graph root, e.g. /users/{id}/onlineMeetings/{meetingId}
    root: str  # Graph's root with its version, e.g. https://graph.microsoft.com/v1.0
    client_request_id: str
    retry: int  # 0 for the first attempt of a call


_current: ContextVar[Attempt | None] = ContextVar("graph_attempt", default=None)


@contextmanager
def sending(attempt: Attempt) -> Iterator[None]:
    """The HTTP request sent inside is `attempt` (a context variable: per thread, so the
    gthread worker's concurrent requests never see each other's)."""
    token = _current.set(attempt)
    try:
        yield
    finally:
        _current.reset(token)


def request_hook(span: Span, request: Any) -> None:
    """Called by the instrumentation right after it starts a request's span."""
    if not span.is_recording():
        return
    attempt = _current.get()
    if attempt is None:
        _set_url(span, _without_query(str(request.url)))
        return
    span.update_name(f"{request.method} {attempt.route}")
    _set_url(span, attempt.root + attempt.route)
    span.set_attribute("http.route", attempt.route)
    span.set_attribute("graph.operation", attempt.operation)
    span.set_attribute("graph.client_request_id", attempt.client_request_id)
    span.set_attribute("graph.retry", attempt.retry)
    span.set_attribute("graph.throttled", False)


def response_hook(span: Span, request: Any, response: Any) -> None:
    """Called by the instrumentation when an answer came, before its span ends."""
    if not span.is_recording() or _current.get() is None:
        return
    request_id = response.headers.get("request-id")
    if request_id:
        span.set_attribute("graph.request_id", request_id)
    span.set_attribute("graph.throttled", response.status_code == 429)


def _set_url(span: Span, url: str) -> None:
    """Replaces the URL under whichever name the instrumentation wrote it."""
    written = getattr(span, "attributes", None) or {}
    for name in [name for name in URL_ATTRIBUTES if name in written] or ["url.full"]:
        span.set_attribute(name, url)


def _without_query(url: str) -> str:
    """The URL without query, fragment and user information."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
