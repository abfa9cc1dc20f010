"""The bench's stack on loopback: redis-server, the Graph emulator, and as many service
instances (the production entry point: gunicorn -c python:service.gunicorn_conf) and floor
apps (tests/bench/floor_app.py, same gunicorn settings) as a scenario asks for.

Built from the tests' pieces (tests/support/stack.py, local_stack) rather than `open_stack`,
because the scenarios need the emulator's admin API, the Entra app's credentials (for the
direct Graph client) and Redis itself. Everything started is stopped when the `Rig` closes,
in reverse order, whatever happened.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import requests
from local_stack.api_server import GUNICORN_COMMAND, service_environment
from local_stack.clients import Caller, write_clients_file
from local_stack.redis_server import RedisServer

from tests.support.emulator import EmulatorHandle, EmulatorSetup, default_config, start_emulator
from tests.support.stack import REPO, ServiceProcess

CALLER_ID = "bench"
# Production's gunicorn settings (service.config.ServerSettings' defaults), spelled out so
# the bench says what it measured.
WORKERS = 2
THREADS = 8
FLOOR_APP = "tests.bench.floor_app:app"


@dataclass
class FloorProcess(ServiceProcess):
    """The floor app under the service's gunicorn configuration."""

    NAME = "floor app"
    LOG_NAME = "floor.log"

    def launch(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(self.workers),
            **self.env,
        }
        command = [*GUNICORN_COMMAND[:-1], FLOOR_APP]
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Rig:
    """A context manager: one redis-server, one emulator (every organizer known, the access
    policy granted) and one caller allowed every organizer; service instances, floor apps
    and more redis-servers on demand."""

    root: Path
    stopping: ExitStack = field(default_factory=ExitStack)
    setup: EmulatorSetup = field(init=False)
    caller: Caller = field(init=False)
    redis_server: RedisServer = field(init=False)
    emulator: EmulatorHandle = field(init=False)
    clients_file: Path = field(init=False)
    env: dict[str, str] = field(init=False)  # every service instance's environment
    _instances: int = 0

    def __enter__(self) -> Rig:
        try:
            self.setup = default_config(self.root, any_user=True, global_access_policy=True)
            self.caller = Caller(CALLER_ID, secrets.token_urlsafe(32), ["*"])
            clients = write_clients_file(self.root / "clients.json", [self.caller])
            self.redis_server = self.start_redis("redis")
            self.emulator = self.stopping.enter_context(
                start_emulator(self.root, self.setup.config)
            )
            self.clients_file = clients
            self.env = self.environment(self.emulator, self.redis_server.url)
        except BaseException:
            self.stopping.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.close()

    def environment(
        self, emulator: EmulatorHandle, redis_url: str, **settings: str
    ) -> dict[str, str]:
        """A service's environment against `emulator` (this rig's tenant and app) and the
        Redis at `redis_url`, with this rig's caller."""
        return service_environment(
            emulator,
            self.setup.tenant_id,
            self.setup.client_id,
            redis_url,
            self.clients_file,
            AZURE_CLIENT_SECRET=self.setup.client_secret,
            # Every organizer books as much as the bench asks (the monthly quota is the
            # service's, not what is measured here).
            ORGANIZER_MONTHLY_LIMIT="0",
            **settings,
        )

    def start_redis(self, name: str) -> RedisServer:
        server = RedisServer(self.root / name).start()
        self.stopping.callback(server.stop)
        return server

    def _directory(self, kind: str) -> Path:
        self._instances += 1
        return self.root / f"{kind}-{self._instances}"

    def service_env(
        self, threads: int = THREADS, base: dict[str, str] | None = None, **settings: str
    ) -> dict[str, str]:
        return {
            **(self.env if base is None else base),
            "GUNICORN_THREADS": str(threads),
            **settings,
        }

    def service(
        self,
        workers: int = WORKERS,
        threads: int = THREADS,
        base: dict[str, str] | None = None,
        **settings: str,
    ) -> ServiceProcess:
        """A service instance, started (its /healthz answers) and stopped with the rig;
        against the rig's emulator and Redis, or as `base` (`environment()`) says."""
        process = ServiceProcess(
            self._directory("service"),
            self.service_env(threads, base, **settings),
            workers=workers,
        )
        self.stopping.callback(process.stop)
        return process.start()

    def floor(self, workers: int = WORKERS, threads: int = THREADS) -> FloorProcess:
        process = FloorProcess(
            self._directory("floor"),
            {
                "GUNICORN_THREADS": str(threads),
                "REDIS_URL": self.env["REDIS_URL"],
                "CLIENTS_FILE": self.env["CLIENTS_FILE"],
            },
            workers=workers,
        )
        self.stopping.callback(process.stop)
        return process.start()

    def time_to_ready(self, timeout: float = 30.0) -> float:
        """Seconds from starting a new service instance to its /readyz answering 200 (it is
        stopped again at once)."""
        process = ServiceProcess(self._directory("service"), self.service_env())
        process.directory.mkdir(parents=True)
        with process.log_path.open("ab") as log:
            started = time.perf_counter()
            process.process = process.launch(log)
        try:
            with requests.Session() as http:
                while time.perf_counter() - started < timeout:
                    try:
                        if http.get(f"{process.url}/readyz", timeout=1).status_code == 200:
                            return time.perf_counter() - started
                    except requests.RequestException:
                        pass
                    if process.process.poll() is not None:
                        break
                    time.sleep(0.005)
            raise RuntimeError(f"no /readyz 200 within {timeout} s:\n{process.log()}")
        finally:
            process.stop()
