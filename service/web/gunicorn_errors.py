"""gunicorn's own error answers as application/problem+json, like the service's.

gunicorn answers requests it cannot parse itself, before Flask sees them: an over-long
request line (414), too many or too large header fields (431 or 400), a malformed request
(400), and 500 when a worker fails outside the application. Out of the box that answer is
text/html without X-Request-ID. Behind the proxy (deploy/, `make run`) nginx answers most of
these first; reached directly (the tests, `docker run`), gunicorn does.

How: `install()` (called from service/gunicorn_conf.py's `on_starting`, in the master, so
every forked worker inherits it) replaces `gunicorn.util.write_error(sock, status_int,
reason, mesg)`, which `gunicorn.workers.base.Worker.handle_error` calls as
`util.write_error(...)` after choosing the status, reason and message. Those two are the
internals relied on, as they are in gunicorn 27 (pinned < 28 in pyproject.toml);
tests/e2e/test_proxy_errors.py fails if they change. The answer keeps gunicorn's status,
reason and `Connection: close`; only the body and headers change.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

from service.foundation.errors import (
    TYPE_PREFIX,
    ExpectationFailed,
    Forbidden,
    InvalidRequest,
    NotImplementedByServer,
    RequestHeaderTooLarge,
    RequestLineTooLong,
    ServiceError,
)

# Longest part of gunicorn's own message kept in `detail` (it may quote the request).
MESSAGE_LIMIT = 200

# status -> (the problem's class, what to fix). Slugs and titles come from the classes,
# as for every other answer (service.foundation.errors).
PROBLEMS: dict[int, tuple[type[ServiceError], str]] = {
    400: (
        InvalidRequest,
        "The request is not valid HTTP/1.1 (request line or header malformed); fix the client.",
    ),
    403: (Forbidden, "This request is not accepted from this address."),
    414: (
        RequestLineTooLong,
        "The request line (method, path and query) is longer than {line} bytes;"
        " use a shorter path.",
    ),
    417: (ExpectationFailed, "Send no Expect header but 100-continue."),
    431: (
        RequestHeaderTooLarge,
        "A header line is longer than {field} bytes, or there are more than {fields} header"
        " fields; send fewer or shorter headers.",
    ),
    500: (
        ServiceError,
        "The service failed unexpectedly; the error is logged under this requestId.",
    ),
    501: (
        NotImplementedByServer,
        "The request uses a transfer coding the service does not support; send a"
        " Content-Length or chunked body.",
    ),
}

_limits: dict[str, int] = {"line": 4094, "field": 8188, "fields": 100}


def problem_answer(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP/1.1 answer: status line, headers and problem+json body."""
    request_id = str(uuid.uuid4())  # the request's own header was not (fully) read
    kind, detail = PROBLEMS.get(status, (None, "The request could not be handled."))
    slug, title = (kind.slug, kind.title) if kind else ("http-error", reason)
    detail = detail.format(**_limits)
    if message and status != 500:
        detail = f"{detail} ({message[:MESSAGE_LIMIT]})"
    body = json.dumps(
        {
            "type": TYPE_PREFIX + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": f"urn:meeting-provisioning:request:{request_id}",
            "requestId": request_id,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same signature and socket handling)."""
    from gunicorn import util

    util.write_nonblock(sock, problem_answer(status_int, reason, mesg))


def install(cfg: Any = None) -> None:
    """Make gunicorn write its error answers with `write_problem`; `cfg` is gunicorn's
    config (server.cfg), for the limits named in the details."""
    from gunicorn import util

    if cfg is not None:
        _limits.update(
            line=int(cfg.limit_request_line),
            # gunicorn counts a header line's CRLF; callers think of the line without it.
            field=int(cfg.limit_request_field_size) - 2,
            fields=int(cfg.limit_request_fields),
        )
    util.write_error = write_problem
