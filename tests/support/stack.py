"""Real processes for end-to-end tests: redis-server and the service under gunicorn.

Everything listens on 127.0.0.1 only, on free ports, and is stopped by its fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from tests.support.emulator import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def wait_until(check, timeout: float, what: str, on_fail=lambda: "") -> None:
    """Poll `check` until it is true; bounded, with the reason in the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s\n{on_fail()}")


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
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
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class Caller:
    id: str
    key: str
    organizers: list[str]


def write_clients_file(path: Path, callers: list[Caller]) -> Path:
    path.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "id": c.id,
                        "keySha256": hashlib.sha256(c.key.encode()).hexdigest(),
                        "organizers": c.organizers,
                    }
                    for c in callers
                ]
            }
        )
    )
    return path


@dataclass
class ServiceProcess:
    """The service under gunicorn, with the same entry point as production."""

    directory: Path
    env: dict[str, str]
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "service.log"

    def start(self) -> ServiceProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(self.workers),
            "PROMETHEUS_MULTIPROC_DIR": str(self.directory / "prometheus"),
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:service.gunicorn_conf",
                "service.wsgi:app",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self.healthy, START_TIMEOUT, "service /healthz", self.log)
        return self

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}\n{self.log()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


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
