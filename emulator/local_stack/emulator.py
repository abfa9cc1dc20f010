"""The Graph emulator as a process: started from a config, known by its announce file.

`python -m graph_emulator` writes `<state dir>/emulator.json` (`baseUrl`,
`authorityHost`, `caBundle`, `port`, `pid`) once it listens; `EmulatorProcess.start`
waits for that file and returns what it says (a subclass, such as the tests' handle with
the admin API, gets its own kind back).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from graph_emulator.clouds import DEFAULT_AUDIENCE
from graph_emulator.server import READY_FILE

from local_stack.processes import START_TIMEOUT, StackError, stop_process, wait_for_start


@dataclass
class EmulatorProcess:
    """A running emulator: where it serves Graph and Entra ID, and the CA to trust."""

    process: subprocess.Popen[bytes]
    base_url: str
    authority_host: str
    ca_bundle: str
    port: int
    pid: int
    graph_audience: str
    state_dir: Path
    log_path: Path | None = None
    # With a Redis front (redis_backend_port): its TLS port, and the file holding the
    # password it gave the redis-server behind it.
    redis_front_port: int | None = None
    redis_front_ports: list[int] = field(default_factory=list)  # one per cluster node
    redis_backend_password_file: Path | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        """Everything the emulator wrote (one line per request), when it writes to a log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it does not stop. Returns the exit code."""
        return stop_process(self.process, timeout)

    @classmethod
    def start(
        cls,
        config: Mapping[str, Any],
        config_path: Path,
        state_dir: Path,
        *,
        port: int = 0,
        graph_audience: str = DEFAULT_AUDIENCE,
        log_path: Path | None = None,
        timeout: float = START_TIMEOUT,
        redis_backend_port: int | list[int] | None = None,
    ) -> Self:
        """Write `config` to `config_path` and start `python -m graph_emulator` with it on
        127.0.0.1:`port` (0: any free one), its CA and announce file in `state_dir`, its output
        to `log_path` (or ours). With `redis_backend_port`, it also serves a Redis that insists
        on its Entra ID tokens, in front of the redis-server on that port
        (graph_emulator.redis_front). Returns one once it has announced itself; StackError, with
        its output, if it exits or stays silent for `timeout` seconds."""
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config), encoding="utf-8")
        ready_file = state_dir / READY_FILE
        ready_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "graph_emulator",
            "--config", str(config_path),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--state-dir", str(state_dir),
            "--graph-audience", graph_audience,
        ]  # fmt: skip
        if isinstance(redis_backend_port, int):
            redis_backend_port = [redis_backend_port]
        for backend_port in redis_backend_port or []:
            command += ["--redis-backend-port", str(backend_port)]
        if log_path is None:
            process = subprocess.Popen(command)
        else:
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_start(
                process,
                ready_file.exists,
                "the Graph emulator",
                timeout,
                None if log_path is None else lambda: _read(log_path),
            )
        except StackError:
            stop_process(process, 5)
            raise
        ready = json.loads(ready_file.read_text(encoding="utf-8"))
        return cls(
            process=process,
            base_url=ready["baseUrl"],
            authority_host=ready["authorityHost"],
            ca_bundle=ready["caBundle"],
            port=ready["port"],
            pid=ready["pid"],
            graph_audience=graph_audience.rstrip("/"),
            state_dir=state_dir,
            log_path=log_path,
            redis_front_port=ready.get("redisFrontPort"),
            redis_front_ports=ready.get("redisFrontPorts", []),
            redis_backend_password_file=(
                Path(ready["redisBackendPasswordFile"])
                if "redisBackendPasswordFile" in ready
                else None
            ),
        )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no output)"
