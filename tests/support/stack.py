"""The service under gunicorn as the tests run it, and a booking system's client of it.

redis-server, the emulator, nginx, free ports and waiting are local_stack's (the same code
as `make run`). Everything listens on 127.0.0.1 only, on free ports, and is stopped by its
fixture.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Self

import requests
from local_stack.api_server import service_environment, start_gunicorn
from local_stack.clients import (
    CALLER_API_URI,
    Caller,
    caller_token_settings,
    with_caller_apps,
    write_clients_file,
)
from local_stack.processes import START_TIMEOUT, free_port, stop_process, wait_for_start
from local_stack.redis_server import RedisServer

from tests.support.emulator import default_config, start_emulator

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LoopbackServer:
    """A process of the stack serving HTTP on 127.0.0.1:`port`, its output in
    `directory`/`LOG_NAME`; `start()` returns once `HEALTH_PATH` answers 200."""

    directory: Path
    port: int = field(default_factory=free_port, kw_only=True)
    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)

    NAME: ClassVar[str]
    LOG_NAME: ClassVar[str]
    HEALTH_PATH: ClassVar[str]
    STOP_TIMEOUT: ClassVar[float] = 10.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / self.LOG_NAME

    def launch(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        """Start the process, its output to `log`."""
        raise NotImplementedError

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = self.launch(log)
        wait_for_start(self.process, self.healthy, self.NAME, START_TIMEOUT, self.log)
        return self

    def healthy(self) -> bool:
        """Whether `HEALTH_PATH` answers 200 (the process itself may have exited)."""
        try:
            return requests.get(f"{self.url}{self.HEALTH_PATH}", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM (graceful for gunicorn, fast for nginx), then SIGKILL after STOP_TIMEOUT."""
        stop_process(self.process, self.STOP_TIMEOUT)


@dataclass
class ServiceProcess(LoopbackServer):
    """The service under gunicorn, with the same entry point as production."""

    env: dict[str, str]
    workers: int = 2

    NAME = "gunicorn"
    LOG_NAME = "service.log"
    HEALTH_PATH = "/healthz"
    STOP_TIMEOUT = 20.0

    def launch(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(self.workers),
            "PROMETHEUS_MULTIPROC_DIR": str(self.directory / "prometheus"),
            **self.env,
        }
        return start_gunicorn(env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class StackCaller(Caller):
    """The stack's caller, and an Entra caller token of its app when the stack has one."""

    token: str | None = None


@contextmanager
def open_stack(
    root: Path,
    caller_id: str,
    workers: int = 2,
    redis_url: str | None = None,
    caller_tokens: bool = False,
    **settings: str,
) -> Iterator[tuple[ServiceProcess, StackCaller]]:
    """A stack of its own in `root`: an emulator whose Graph knows every organizer (any GUID,
    the access policy granted), redis-server at `redis_url` (or one of its own), and the
    service (gunicorn, `workers`, LOG_LEVEL WARNING unless `settings` say otherwise) with one
    caller allowed every organizer. With `caller_tokens`, the service takes API keys and
    Entra caller tokens (CALLER_AUTH=both), the caller has an Entra app known to the
    emulator, and `caller.token` is a v2 caller token of it (from the emulator's token
    endpoint, client credentials). For the bench and the fuzzer; stopped on exit."""
    setup = default_config(root, any_user=True, global_access_policy=True)
    caller = StackCaller(caller_id, secrets.token_urlsafe(32), ["*"])
    config = setup.config
    api_client_id = str(uuid.uuid4())
    if caller_tokens:
        caller.app_id, caller.app_secret = str(uuid.uuid4()), secrets.token_urlsafe(24)
        config = with_caller_apps(config, api_client_id, [caller])
        settings = {**caller_token_settings(api_client_id), **settings}
    clients = write_clients_file(root / "clients.json", [caller])
    with ExitStack() as stopping:
        if redis_url is None:
            redis_server = RedisServer(root / "redis").start()
            stopping.callback(redis_server.stop)
            redis_url = redis_server.url
        emulator = stopping.enter_context(start_emulator(root, config))
        if caller.app_id and caller.app_secret:
            caller.token = emulator.get_token(
                setup.tenant_id, caller.app_id, caller.app_secret, f"{CALLER_API_URI}/.default"
            )
        settings = {"AZURE_CLIENT_SECRET": setup.client_secret, "LOG_LEVEL": "WARNING", **settings}
        env = service_environment(
            emulator, setup.tenant_id, setup.client_id, redis_url, clients, **settings
        )
        service = ServiceProcess(root / "service", env, workers=workers).start()
        stopping.callback(service.stop)
        yield service, caller


# Checks every Client runs on each answer it receives, while they are listed here (opt-in:
# tests/e2e/conftest.py lists tests.support.openapi_check.check during each e2e test).
RESPONSE_CHECKS: list[Callable[[requests.Response], None]] = []


def _run_response_checks(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    for check in list(RESPONSE_CHECKS):
        check(response)


class Client:
    """A booking system's view of the API."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url
        self.key = key
        self.session = requests.Session()
        self.session.hooks["response"].append(_run_response_checks)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**headers, **(extra or {})}

    def post(self, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.post(
            f"{self.base_url}/v1/meetings", json=body, headers=self.headers(headers), timeout=60
        )

    def post_raw(self, data: bytes, content_type: str | None) -> requests.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return self.session.post(
            f"{self.base_url}/v1/meetings", data=data, headers=self.headers(headers), timeout=60
        )

    def get(self, booking_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(
            f"{self.base_url}/v1/meetings/{booking_id}", headers=self.headers(headers), timeout=60
        )

    def patch(self, booking_id: str, change: Any) -> requests.Response:
        return self.session.patch(
            f"{self.base_url}/v1/meetings/{booking_id}",
            json=change,
            headers=self.headers(),
            timeout=60,
        )

    def delete(self, booking_id: str) -> requests.Response:
        return self.session.delete(
            f"{self.base_url}/v1/meetings/{booking_id}", headers=self.headers(), timeout=60
        )

    def usage(self, organizer_id: str) -> requests.Response:
        return self.session.get(
            f"{self.base_url}/v1/organizers/{organizer_id}/usage",
            headers=self.headers(),
            timeout=60,
        )


def run_bounded(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `command` in the repository and return (exit status, output); kill its whole
    process group if it outlives `timeout` (a gunicorn restarting failing workers forever
    instead of exiting would)."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(
            f"{command} still ran after {timeout} s (restarting workers instead of exiting?)"
            f"\n{output.decode(errors='replace')}"
        ) from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
        except ProcessLookupError:
            pass
    return process.returncode, output.decode(errors="replace")
