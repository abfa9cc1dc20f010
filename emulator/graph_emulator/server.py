"""Serving the app over HTTPS until SIGTERM/SIGINT, and announcing where it listens.

Once the socket is bound, ``emulator.json`` in the state dir says where the emulator
is (port, base URL, CA bundle, pid). It is written to a temporary file and renamed,
so a reader never sees half a file, and removed again on a clean stop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import struct
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from .app import RESET_KEY
from .keep_alive import KeepAliveRequestHandler

logger = logging.getLogger("graph_emulator")

READY_FILE = "emulator.json"


class _RequestHandler(KeepAliveRequestHandler):
    # A client that connects and then stalls must not hold a worker thread forever (an
    # idle kept-alive connection waits less: keep_alive.KEEP_ALIVE_IDLE_SECONDS).
    timeout = 60

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The app logs one line per request itself, with its request id."""

    def connection_dropped(
        self, error: BaseException, environ: dict[str, Any] | None = None
    ) -> None:
        super().connection_dropped(error, environ)
        if environ is not None and environ.get(RESET_KEY):
            # Linger 0 makes close() send a TCP RST: the client sees a reset, not a reply.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def public_host(host: str) -> str:
    """The host clients should use for a bind address."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def serve(
    app: Flask, host: str, port: int, ssl_context: ssl.SSLContext, state_dir: Path,
    graph_audience: str, announced: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    ready_file = state_dir / READY_FILE
    ready_file.unlink(missing_ok=True)  # never let a reader see a previous run's file
    server = make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
    _enable_tls(server, ssl_context)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = threading.Thread(target=server.serve_forever, name="emulator-server", daemon=True)
    worker.start()
    base_url = f"https://{public_host(host)}:{server.port}"
    _write_ready_file(
        ready_file,
        {
            "port": server.port,
            "baseUrl": base_url,
            "authorityHost": base_url,
            "caBundle": str(state_dir / "ca.pem"),
            "graphAudience": graph_audience,
            "pid": os.getpid(),
            **(announced or {}),
        },
    )
    logger.info("Graph emulator listening on %s (audience %s)", base_url, graph_audience)
    while not stop.wait(0.5):
        pass
    logger.info("stopping")
    server.shutdown()
    server.server_close()
    worker.join(timeout=5)
    ready_file.unlink(missing_ok=True)


def _enable_tls(server: BaseWSGIServer, context: ssl.SSLContext) -> None:
    # Wrapping here rather than passing ssl_context to make_server defers the TLS
    # handshake to the worker thread (first read). Otherwise it runs in accept(), and a
    # client that connects without speaking TLS (a port probe) blocks every other one.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    server.ssl_context = context


def _write_ready_file(path: Path, content: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=2), encoding="utf-8")
    os.replace(temporary, path)
