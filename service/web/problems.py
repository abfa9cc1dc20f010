"""Every error leaves as RFC 9457 application/problem+json, rendered here and only here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, g, has_request_context, json, request
from werkzeug.exceptions import HTTPException

from service.foundation.errors import (
    TYPE_PREFIX,
    BodyTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ServiceError,
    Unauthenticated,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

# RFC 3986 pchar and "/" beyond what quote() always keeps (letters, digits, "_.-~").
PATH_CHARACTERS = "/!$&'()*+,;=:@"

# The problem type of each status Flask and webargs raise as werkzeug exceptions: the
# error class of that status, so its slug and title are written only there.
HTTP_PROBLEMS: dict[int, type[ServiceError]] = {
    kind.status: kind
    for kind in (
        InvalidRequest,
        Unauthenticated,
        NotFound,
        MethodNotAllowed,
        BodyTooLarge,
        UnsupportedMediaType,
        ServiceError,
    )
}
UNKNOWN_FIELD = "Unknown field."
# An answer names at most this many invalid fields, each name cut to a readable length:
# the errors of a hostile body must not make an answer many times its size.
MAX_REPORTED_ERRORS = 20
MAX_FIELD_NAME = 100
DRAIN_LIMIT = 1024 * 1024


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if has_request_context():
        # A URI reference, so the path as sent: percent-encoded where RFC 3986 needs it.
        body["instance"] = quote(request.path, safe=PATH_CHARACTERS)
        if "request_id" in g:
            body["requestId"] = g.request_id
    body.update(extensions or {})
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    response.headers.update(headers or {})
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, str]:
    """webargs/marshmallow's nested messages as {"attendees.0.upn": "what is wrong"}."""
    flat: dict[str, str] = {}
    if isinstance(messages, Mapping):
        for name, inner in messages.items():
            if name == "_schema":
                flat.update(flatten_messages(inner, prefix.rstrip(".") or "body"))
                continue
            flat.update(flatten_messages(inner, f"{prefix}{name}."))
    elif isinstance(messages, list):
        text = "; ".join(str(m) for m in messages if not isinstance(m, (dict, list)))
        key = prefix.rstrip(".")
        if text == UNKNOWN_FIELD:
            text = "is not a field of this request (check the spelling)"
        if text:
            flat[key] = text
        for item in messages:
            if isinstance(item, (dict, list)):
                flat.update(flatten_messages(item, prefix))
    else:
        flat[prefix.rstrip(".")] = str(messages)
    return flat


def bounded(errors: Mapping[str, str]) -> dict[str, str]:
    """The first MAX_REPORTED_ERRORS errors (by field name), with names cut short."""
    return {
        _shortened(name): message for name, message in sorted(errors.items())[:MAX_REPORTED_ERRORS]
    }


def _shortened(name: str) -> str:
    return name if len(name) <= MAX_FIELD_NAME else name[:MAX_FIELD_NAME] + "…"


def from_service_error(error: ServiceError) -> Response:
    return problem(
        error.status, error.slug, error.title, error.detail, error.extensions, error.headers
    )


def from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    kind = HTTP_PROBLEMS.get(status)
    slug, title = (kind.slug, kind.title) if kind else ("http-error", error.name)
    detail = error.description or title
    extensions: dict[str, Any] = {}
    data = getattr(error, "data", None)  # webargs puts validation messages here
    if isinstance(data, Mapping) and "messages" in data:
        messages = data["messages"]
        # webargs nests messages under the location ("json"); callers think in fields.
        if isinstance(messages, Mapping) and set(messages) <= {"json", "query", "view_args"}:
            messages = {
                k: v
                for inner in messages.values()
                for k, v in (inner.items() if isinstance(inner, Mapping) else [("_schema", inner)])
            }
        errors = flatten_messages(messages)
        if "Invalid JSON body." in errors.values():
            detail = "The body is not valid JSON."
            errors = {"body": "is not valid JSON"}
        else:
            found = len(errors)
            errors = bounded(errors)
            detail = "Some fields are invalid: " + ", ".join(sorted(errors))
            if found > len(errors):
                detail += f", and {found - len(errors)} more (fix these first)"
            detail += "."
        extensions["errors"] = errors
    if status == 413 and has_request_context():
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = f"The body is larger than {limit} bytes (MAX_BODY_BYTES); nothing was stored."
        drain_body()
    headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
    return problem(status, slug, title, detail, extensions, headers)


def drain_body() -> None:
    """Read and discard a refused body, up to DRAIN_LIMIT bytes.

    Werkzeug refuses an oversized body before reading it. If the connection is then closed
    with the body still arriving, the client's TCP stack gets a reset and may never see our
    413. Reading a modest excess lets the answer arrive; a huge body is not worth reading.
    """
    length = request.content_length
    if length is None or length > DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    remaining = length
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


def register(app: Flask) -> None:
    # HTTPException is handled by the flask-smorest Api (service.web.routes.ProblemApi), which
    # calls from_http_exception; registering it here too would only shadow that.
    app.register_error_handler(ServiceError, from_service_error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        return from_service_error(
            ServiceError(
                "The service failed unexpectedly; the error is logged under this requestId."
            )
        )
