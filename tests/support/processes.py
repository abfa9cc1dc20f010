"""What the fault tests do to processes: find gunicorn's workers (and the one holding a
client's connection) through /proc, and kill or signal a redis-server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

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
