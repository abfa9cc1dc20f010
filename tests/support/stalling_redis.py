"""A Redis that stalls at the worst moment: a TCP proxy that pauses the server when a
chosen command passes through."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading

from local_stack.redis_server import RedisServer

from tests.support.processes import signal_redis


class StallingRedisProxy:
    """A TCP proxy in front of a redis-server that pauses the server (SIGSTOP) for `pause`
    seconds right when the first command containing all of `trigger` passes through, and
    then resumes it (SIGCONT). The command itself is delivered: the stalled server runs it
    when it resumes, whether or not the client is still waiting for the answer.
    """

    def __init__(self, server: RedisServer, trigger: tuple[bytes, ...], pause: float) -> None:
        self.server = server
        self.trigger = trigger
        self.pause = pause
        self.armed = threading.Event()
        self.fired = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self) -> None:
        self.fired.clear()
        self.armed.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            self._sockets += [downstream, upstream]
            threading.Thread(
                target=self._pump, args=(downstream, upstream, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, False), daemon=True
            ).start()

    def _pump(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if outbound and self.armed.is_set() and all(t in chunk for t in self.trigger):
                    self.armed.clear()
                    self._stall()
                target.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)  # pass the close on, after the data

    def _stall(self) -> None:
        signal_redis(self.server, signal.SIGSTOP)
        self.fired.set()
        timer = threading.Timer(self.pause, signal_redis, (self.server, signal.SIGCONT))
        timer.daemon = True
        timer.start()
