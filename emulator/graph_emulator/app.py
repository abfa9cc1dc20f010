"""The emulator's Flask app: Entra + Graph + admin endpoints on one host.

Around every request the app assigns Graph's request ids, applies injected faults,
adds the response headers Graph sends, counts the outcome and logs one line. (The
``Date`` header comes from the HTTP server, which always sends one.)
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import admin, graph_api, identity
from .clouds import DEFAULT_AUDIENCE
from .config import EmulatorConfig
from .errors import EntraError, GraphError, entra_error, graph_error
from .faults import FaultAction
from .operations import ENDPOINTS, ENTRA_OPERATIONS, GRAPH_OPERATIONS
from .state import EXTENSION_KEY, EmulatorState, current_state

logger = logging.getLogger("graph_emulator")

# The environ key that tells ResetMiddleware to drop the connection.
RESET_KEY = "emulator.reset"

BODY_METHODS = frozenset({"POST", "PATCH"})
AGS_DIAGNOSTIC = json.dumps(
    {
        "ServerInfo": {
            "DataCenter": "Local Emulator",
            "Slice": "E",
            "Ring": "5",
            "ScaleUnit": "000",
            "RoleInstance": "GRAPH-EMULATOR",
        }
    },
    separators=(",", ":"),
)

StartResponse = Callable[..., Any]


def create_app(config: EmulatorConfig, graph_audience: str = DEFAULT_AUDIENCE) -> Flask:
    """Build the emulator for ``config``, playing the Graph resource ``graph_audience``."""
    app = Flask(__name__)
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep Graph's member order, easier to read in logs
    app.extensions[EXTENSION_KEY] = EmulatorState.from_config(config, graph_audience.rstrip("/"))
    app.register_blueprint(identity.bp)
    app.register_blueprint(graph_api.bp)
    app.register_blueprint(admin.bp)
    app.before_request(_begin)
    app.after_request(_finish)
    app.register_error_handler(GraphError, _render_graph_error)
    app.register_error_handler(EntraError, _render_entra_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.wsgi_app = ResetMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


class ResetMiddleware:
    """Turns a "reset" fault into a dropped connection instead of an HTTP response.

    Raising ConnectionAbortedError out of the WSGI app makes werkzeug's server treat the
    connection as dropped and send nothing; the server's request handler then closes
    the socket (see server.py).
    """

    def __init__(self, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self._wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def guarded(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if environ.get(RESET_KEY):
                raise ConnectionAbortedError("emulator fault: connection reset")
            return start_response(status, headers, exc_info)

        return self._wsgi_app(environ, guarded)


def _begin() -> Response | None:
    g.started = time.monotonic()
    g.request_id = str(uuid.uuid4())
    # Graph echoes the caller's client-request-id, or repeats request-id if none was sent.
    g.client_request_id = request.headers.get("client-request-id") or g.request_id
    g.operation = ENDPOINTS.get(request.endpoint or "")
    if g.operation is None:
        return None
    organizer = (request.view_args or {}).get("user_id")
    g.fault = current_state().faults.decide(g.operation, organizer)
    if g.fault is None or g.fault.after_processing:
        return None
    return _apply_fault(g.fault)


def _apply_fault(fault: FaultAction) -> Response | None:
    """Delay, then answer with the fault's error or mark the connection for reset."""
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if fault.reset:
        request.environ[RESET_KEY] = True
        return Response(status=503)  # never sent: ResetMiddleware drops the connection
    if fault.status is None:
        return None  # latency only: serve normally
    if g.operation in ENTRA_OPERATIONS:
        response = entra_error(fault.status, fault.error_code, None, fault.message)
    else:
        response = graph_error(fault.status, fault.error_code, fault.message)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    return response


def _finish(response: Response) -> Response:
    operation = g.get("operation")
    fault: FaultAction | None = g.get("fault")
    if fault is not None and fault.after_processing:
        # The request has been handled (a meeting may now exist); the client still sees
        # the fault: the "response lost on the way back" case.
        response = _apply_fault(fault) or response
    response.headers["request-id"] = g.request_id
    response.headers["client-request-id"] = g.client_request_id
    if operation in ENTRA_OPERATIONS:
        response.headers["x-ms-request-id"] = g.request_id
    else:
        response.headers["x-ms-ags-diagnostic"] = AGS_DIAGNOSTIC
    if operation in GRAPH_OPERATIONS and response.status_code == 401:
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="", authorization_uri="{request.host_url}common/oauth2/authorize",'
            ' client_id="00000003-0000-0000-c000-000000000000"'
        )
        claims = g.get("claims_challenge")
        if claims is not None:  # CAE: the client must come back with a token for these claims
            response.headers["WWW-Authenticate"] += (
                f', error="insufficient_claims", claims="{claims}"'
            )
    outcome: int | str = "reset" if request.environ.get(RESET_KEY) else response.status_code
    _record(operation, outcome)
    logger.info(
        "%s %s -> %s %.0fms request-id=%s",
        request.method,
        request.path,
        outcome,
        (time.monotonic() - g.started) * 1000,
        g.request_id,
    )
    return response


def _record(operation: str | None, outcome: int | str) -> None:
    if operation is None:
        return
    stats = current_state().stats
    stats.count(operation, outcome)
    if operation == "token":
        stats.record_token_request({**identity.describe_token_request(), "status": outcome})
    elif operation in GRAPH_OPERATIONS:
        view_args = request.view_args or {}
        entry: dict[str, Any] = {
            "operation": operation,
            "version": view_args.get("version"),
            "userId": view_args.get("user_id"),
            "status": outcome,
            "clientRequestId": g.client_request_id,
            "requestId": g.request_id,
            "body": request.get_json(silent=True) if request.method in BODY_METHODS else None,
            "prefer": request.headers.get("Prefer"),
        }
        if "meeting_id" in view_args:  # GET, PATCH and DELETE of one meeting
            entry["meetingId"] = view_args["meeting_id"]
        stats.record_request(entry)


def _render_graph_error(error: GraphError) -> Response:
    return graph_error(error.status, error.code, error.message)


def _render_entra_error(error: EntraError) -> Response:
    return entra_error(error.status, error.error, error.code, error.message)


def _render_http_exception(error: HTTPException) -> Response:
    # Unknown paths and methods still answer in Graph's error shape.
    status = error.code or 500
    return graph_error(status, error.name.replace(" ", ""), error.description)
