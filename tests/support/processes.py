"""What the fault tests do to processes: find gunicorn's workers (and the one holding a
client's connection) through /proc, and kill or signal a redis-server."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_stack.processes import wait_until
from local_stack.redis_server import RedisServer

from tests.support.stack import ServiceProcess


def children(pid: int) -> list[int]:
    """The child processes of `pid` (for gunicorn's master: its workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(set(found))


def workers_of(service: ServiceProcess) -> list[int]:
    assert service.process is not None
    return children(service.process.pid)


def _socket_inodes(local_port: int, remote_port: int) -> set[str]:
    """Inodes of established IPv4 TCP sockets from local_port to remote_port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if (
            state == "01"
            and int(local.split(":")[1], 16) == local_port
            and int(remote.split(":")[1], 16) == remote_port
        ):
            inodes.add(inode)
    return inodes


def worker_holding(service: ServiceProcess, client_port: int) -> int:
    """The gunicorn worker that holds the connection a client opened from `client_port`."""
    inodes = _socket_inodes(service.port, client_port)
    assert inodes, f"no connection from port {client_port} to the service"
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in workers_of(service):
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd) in targets:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker of {service.url} holds the connection from {client_port}")


def kill_redis(server: RedisServer) -> None:
    """SIGKILL: redis-server gets no chance to close its connections cleanly."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)


def signal_redis(server: RedisServer, signum: signal.Signals) -> None:
    assert server.process is not None
    server.process.send_signal(signum)


def kill_the_worker_serving(
    service: ServiceProcess,
    key: str,
    body: dict[str, Any],
    reached: Callable[[], bool],
    what: str,
    then_wait: float = 0.0,
) -> int:
    """POST `body` with API key `key` on a connection of its own, wait until `reached()`
    (the request got that far at Graph) and `then_wait` seconds more, SIGKILL the gunicorn
    worker serving it, and check that the client got no answer; the killed worker's pid."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        connection.connect()
        client_port = connection.sock.getsockname()[1]
        connection.request(
            "POST",
            "/v1/meetings",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        wait_until(reached, 10, what)
        time.sleep(then_wait)
        victim = worker_holding(service, client_port)
        os.kill(victim, signal.SIGKILL)
        try:
            connection.getresponse()
        except ConnectionError:  # reset or closed without an answer
            return victim
        raise AssertionError("the killed worker's client got an answer")
    finally:
        connection.close()
