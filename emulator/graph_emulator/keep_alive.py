"""HTTP/1.1 persistent connections for werkzeug's server, as Graph and Entra keep them.

werkzeug's ``WSGIRequestHandler.run_wsgi`` answers every request with
``Connection: close`` (and then reads whatever else the socket holds, which would swallow
the next request of a kept-alive connection). Every client call then pays a new TCP and TLS
handshake that real Graph does not impose, which distorts latency figures. This handler
serves the same WSGI app but keeps the connection open after a response when, and only
when, the next request's first byte is known to be where the client will send it:

- the request is HTTP/1.1 and did not say ``Connection: close`` (http.server's
  ``parse_request`` decides from the header; HTTP/1.0 always closes);
- its body has a clear end (a valid ``Content-Length``, or chunked and nothing else), the
  app cannot read past that end, and what the app left unread is read and discarded after
  the response, up to ``DRAIN_LIMIT_BYTES`` (beyond that, or on a malformed body, the
  connection is closed instead);
- the response went out whole: a ``Content-Length`` the app honoured, or chunked.

A kept-alive connection waits at most ``KEEP_ALIVE_IDLE_SECONDS`` for its next request, so
idle clients do not hold worker threads for the full request timeout.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from werkzeug.exceptions import InternalServerError
from werkzeug.serving import WSGIRequestHandler, connection_dropped_errors

logger = logging.getLogger("graph_emulator")

# How long a kept-alive connection may sit idle between requests.
KEEP_ALIVE_IDLE_SECONDS = 15.0
# How much of a body the app did not read is discarded to keep the connection; a client
# sending more gets its connection closed after the response instead.
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_DRAIN_READ_BYTES = 64 * 1024

Environ = dict[str, Any]
WriteCallable = Callable[[bytes], object]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes | None: ...


class RequestBody(io.RawIOBase):
    """One request's body as the app reads it: it ends where the request ends.

    ``length`` is the Content-Length, or None for a stream that ends by itself (a chunked
    body, already decoded by werkzeug's DechunkedInput).
    """

    def __init__(self, stream: _Readable, length: int | None) -> None:
        super().__init__()
        self._stream = stream
        self._remaining = length
        self.complete = length == 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.complete:
            return 0
        size = len(buffer) if self._remaining is None else min(len(buffer), self._remaining)
        data = self._stream.read(size)
        if not data:
            if self._remaining is not None:
                raise ConnectionAbortedError("the client closed before the end of its body")
            self.complete = True
            return 0
        buffer[: len(data)] = data
        if self._remaining is not None:
            self._remaining -= len(data)
            self.complete = self._remaining == 0
        return len(data)

    def longer_than(self, limit: int) -> bool:
        """Whether what is left of a sized body is more than ``limit`` bytes."""
        return self._remaining is not None and self._remaining > limit

    def skip_rest(self, limit: int) -> bool:
        """Discard what the app left unread, reading at most about ``limit`` bytes.

        True once the body has been read to its end; False if it is longer than that, or
        malformed, or the client went away: then the connection cannot carry another request.
        """
        skipped = 0
        try:
            while not self.complete and skipped <= limit:
                skipped += len(self.read(_DRAIN_READ_BYTES) or b"")
        except (OSError, ValueError):  # a bad chunk header, a dropped or timed-out client
            return False
        return self.complete


def _declared_body(environ: Environ, rfile: _Readable) -> RequestBody | None:
    """The request's body reader, or None if where the body ends is not certain."""
    chunked = environ.get("wsgi.input_terminated", False)  # werkzeug decodes chunked input
    length_header = environ.get("CONTENT_LENGTH", "")
    if chunked:
        if length_header:
            return None  # both framings: a request-smuggling shape, never trust either
        return RequestBody(environ["wsgi.input"], None)
    if not length_header:
        return RequestBody(rfile, 0)
    if not length_header.isdigit():
        return None
    return RequestBody(rfile, int(length_header))


class _Response:
    """start_response and write for one response, tracking whether it went out whole."""

    def __init__(self, handler: KeepAliveRequestHandler, environ: Environ) -> None:
        self._handler = handler
        self._environ = environ
        self._status: str | None = None
        self._headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self._chunked = False
        self._expected: int | None = None  # the Content-Length sent
        self._written = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> WriteCallable:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status is not None:
            raise AssertionError("Headers already set")
        self._status = status
        self._headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        if not self.headers_sent:
            self._send_headers()
        if data:
            wfile = self._handler.wfile
            if self._chunked:
                wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                wfile.write(data)
            self._written += len(data)
        self._handler.wfile.flush()

    def finish(self) -> None:
        """End the response; the connection closes unless it is complete and framed."""
        if not self.headers_sent:
            self.write(b"")
        if self._chunked:
            self._handler.wfile.write(b"0\r\n\r\n")
            self._handler.wfile.flush()
        elif self._expected is not None and self._written != self._expected:
            self._handler.close_connection = True

    def _send_headers(self) -> None:
        if self._status is None:
            raise AssertionError("write() before start_response")
        code_text, _, message = self._status.partition(" ")
        code = int(code_text)
        handler = self._handler
        handler.send_response(code, message)
        names = set()
        for name, value in self._headers:
            handler.send_header(name, value)  # "Connection: close" from the app closes
            names.add(name.lower())
        bodiless = (
            self._environ["REQUEST_METHOD"] == "HEAD" or 100 <= code < 200 or code in (204, 304)
        )
        if "content-length" in names:
            if not bodiless:
                declared = dict((k.lower(), v) for k, v in self._headers)["content-length"]
                self._expected = int(declared) if declared.isdigit() else None
                if self._expected is None:
                    handler.close_connection = True
        elif not bodiless:
            self._chunked = True
            handler.send_header("Transfer-Encoding", "chunked")
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        self.headers_sent = True


class KeepAliveRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, serving several requests per connection when safe."""

    protocol_version = "HTTP/1.1"
    _requests_served = 0

    def setup(self) -> None:
        super().setup()
        # A response goes out as several writes (TLS session tickets, headers, body).
        # With Nagle's algorithm on, a later write waits for the client's delayed ACK of
        # an earlier one (about 40 ms on loopback) unless the connection closes, as it
        # did after every response before.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        self._requests_served = 0
        super().handle()

    def handle_one_request(self) -> None:
        if self._requests_served and not self._next_request_arrives():
            self.close_connection = True
            return
        self._requests_served += 1
        super().handle_one_request()

    def _next_request_arrives(self) -> bool:
        """Wait, at most the idle timeout, for a kept-alive connection's next request."""
        self.connection.settimeout(KEEP_ALIVE_IDLE_SECONDS)
        try:
            arrived = bool(self.rfile.peek(1))  # type: ignore[attr-defined]
        except (TimeoutError, OSError):
            return False  # idle too long, or gone: close without a word, as servers do
        self.connection.settimeout(self.timeout)
        return arrived

    def run_wsgi(self) -> None:
        if self.request_version != "HTTP/1.1":
            self.close_connection = True
        self.environ = environ = self.make_environ()
        body = _declared_body(environ, self.rfile)
        if body is None or body.longer_than(DRAIN_LIMIT_BYTES):
            self.close_connection = True  # said up front, in the response's headers
        if body is not None:
            environ["wsgi.input"] = body
        response = _Response(self, environ)
        try:
            self._execute(self.server.app, environ, response)
        except connection_dropped_errors as error:
            self.connection_dropped(error, environ)
            return
        except Exception:
            # Whatever was sent is suspect; answer 500 if nothing was, then close.
            self.close_connection = True
            logger.exception("Error on request %s %s", self.command, self.path)
            if not response.headers_sent:
                try:
                    self._execute(InternalServerError(), environ, _Response(self, environ))
                except Exception:  # noqa: S110 - the client is beyond reach; already logged
                    pass
            return
        if body is not None and not self.close_connection:
            if not body.skip_rest(DRAIN_LIMIT_BYTES):
                self.close_connection = True

    @staticmethod
    def _execute(
        app: Callable[[Environ, Any], Iterable[bytes]], environ: Environ, response: _Response
    ) -> None:
        chunks = app(environ, response.start_response)
        try:
            for data in chunks:
                response.write(data)
            response.finish()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def connection_dropped(self, error: BaseException, environ: Environ | None = None) -> None:
        # Nothing (or not all) was sent, so this connection cannot carry another request.
        self.close_connection = True
