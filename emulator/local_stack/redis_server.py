"""redis-server on a loopback port, for `make run` (persistent, under .run/redis) and the
tests (in memory, one per session or per test)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from local_stack.processes import StackError, free_port, stop_process, wait_for_start


def redis_executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        raise StackError(
            "redis-server is missing: apt-get install redis-server (make run and make test try it)"
        )
    return executable


@dataclass
class RedisServer:
    """redis-server on 127.0.0.1:`port`, working in `directory`.

    `persistent` keeps an append-only file there (as `make run` does, so the demo's
    bookings outlive a restart); otherwise nothing is saved. `quiet` drops what the server
    prints; else its errors go to our stderr."""

    directory: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    quiet: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def launch(self) -> RedisServer:
        """Start the process without waiting for it to answer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_executable(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes" if self.persistent else "no",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if self.quiet else None,
        )
        return self

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it and wait until it answers PING."""
        self.launch()
        assert self.process is not None
        wait_for_start(self.process, self.ping, f"redis-server on port {self.port}", timeout)
        return self

    def client(self) -> redis.Redis:
        """A plain redis-py client, to inspect or damage the store from a test."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
