"""`make run` for real: python -m local_stack starts Redis, the Graph emulator and the
API, prints a demo key and a curl line that works, and the curl lines that get an Entra
caller token from the emulator and call the API with it (run here as printed, with bash and
curl), and takes everything down on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from local_stack.processes import accepts, free_port, wait_until

pytestmark = pytest.mark.e2e

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
KEY_LINE = re.compile(r"Demo API key \(caller 'demo'\): (\S+)")
EMULATOR_LINE = re.compile(r"Graph emulator at https://127\.0\.0\.1:(\d+)")
CURL = re.compile(
    r"curl -s -X POST (?P<url>\S+) \\\n"
    r"\s+-H 'Authorization: Bearer (?P<key>[^']+)' -H 'Content-Type: application/json' \\\n"
    r"\s+-d '(?P<body>[^']+)'"
)
# The two commands of the caller token's instructions: get a token, then POST with it.
TOKEN_CURL = re.compile(r"^  TOKEN=\$\(curl .*?\n(?:    .*\n)*?  curl .*?\n(?:    .*\n)+", re.M)


class Output:
    """Everything the process writes, read on a thread so its pipe never fills up."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                self.lines.append(raw.decode(errors="replace"))

    def close(self) -> None:
        """After every writer is gone: the reader meets the end of the pipe and stops."""
        self._thread.join(10)

    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)


def devrun_environment(port: int, redis_port: int) -> dict[str, str]:
    """This machine's environment without any tenant, Redis or gunicorn settings: the demo."""
    dropped = ("AZURE_", "GRAPH_", "GUNICORN_", "PROMETHEUS_", "DEMO_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and k not in ("REDIS_URL", "CLIENTS_FILE", "PORT")
    }
    env.update({"PORT": str(port), "DEMO_REDIS_PORT": str(redis_port)})
    return env


def session_members(session_id: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members.append(int(entry.name))
    return members


def start_devrun(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Output]:
    """`python -m local_stack` as `make run` starts it, in its own session, with its output
    collected; in `cwd`, not the repository: .run/ goes there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, Output(process.stdout)


def wait_for_demo_api(process: subprocess.Popen[bytes], output: Output, port: int) -> None:
    """Until the demo API answers /healthz through nginx; fails at once if devrun exits."""

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"devrun exited with {process.returncode}\n{output.text()}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_until(serving, START_TIMEOUT, "the demo API's /healthz", output.text)


def test_make_run_serves_the_demo_and_stops_everything_on_sigterm(tmp_path):
    port, redis_port = free_port(), free_port()
    process, output = start_devrun(tmp_path, devrun_environment(port, redis_port))
    try:

        def printed_the_curl_line() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"devrun exited with {process.returncode}\n{output.text()}")
            return CURL.search(output.text()) is not None

        wait_until(printed_the_curl_line, START_TIMEOUT, "the curl line", output.text)
        text = output.text()
        key_line = KEY_LINE.search(text)
        assert key_line, text
        curl = CURL.search(text)
        assert curl is not None
        assert curl["key"] == key_line[1]
        assert curl["url"] == f"http://127.0.0.1:{port}/v1/meetings"
        body = json.loads(curl["body"])
        emulator_line = EMULATOR_LINE.search(text)
        assert emulator_line, text
        emulator_port = int(emulator_line[1])
        assert (tmp_path / ".run" / "clients.json").is_file()
        wait_for_demo_api(process, output, port)

        headers = {"Authorization": f"Bearer {curl['key']}"}
        created = requests.post(curl["url"], json=body, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        assert created.json()["bookingId"] == body["bookingId"]
        assert created.json()["joinWebUrl"].startswith("https://teams.microsoft.com/")
        replay = requests.post(curl["url"], json=body, headers=headers, timeout=30)
        assert replay.status_code == 200, replay.text
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["meetingId"] == created.json()["meetingId"]

        # The Entra caller token's instructions, followed as printed.
        token_curl = TOKEN_CURL.search(text)
        assert token_curl is not None, text
        assert "scope=api://meeting-provisioning/.default" in token_curl[0], token_curl[0]
        script = token_curl[0].rstrip("\n") + " -o entra-post.json -w '%{http_code}'\n"
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        entra = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        answer = (tmp_path / "entra-post.json").read_text() if entra.returncode == 0 else ""
        assert entra.stdout == "201", f"{entra.stdout}{entra.stderr}{answer}"
        assert json.loads(answer)["bookingId"] == "demo-2", answer

        members = session_members(process.pid)
        assert len(members) >= 5, members  # devrun, redis, emulator, gunicorn + workers
        assert accepts(redis_port) and accepts(emulator_port)

        process.send_signal(signal.SIGTERM)  # devrun only, as a supervisor would
        try:
            status = process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"devrun still runs after SIGTERM\n{output.text()}") from None
        assert status == 0, output.text()

        def all_gone() -> bool:
            return not session_members(process.pid) and not any(
                accepts(p) for p in (port, redis_port, emulator_port)
            )

        wait_until(
            all_gone,
            STOP_TIMEOUT,
            "every process of the demo stack gone",
            lambda: f"left: {session_members(process.pid)}\n{output.text()}",
        )
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(10)
        output.close()
        process.stdout.close()


def test_make_run_with_an_entra_only_redis(tmp_path):
    """DEMO_REDIS_AUTH=entra: the demo's service logs in to the emulator's Redis front with
    Entra ID tokens, and books through it."""
    port, redis_port = free_port(), free_port()
    env = {**devrun_environment(port, redis_port), "DEMO_REDIS_AUTH": "entra"}
    process, output = start_devrun(tmp_path, env)
    try:
        wait_for_demo_api(process, output, port)
        text = output.text()
        assert "behind the Entra-only TLS front at rediss://127.0.0.1:" in text, text
        curl = CURL.search(text)
        assert curl is not None, text
        headers = {"Authorization": f"Bearer {curl['key']}"}
        body = json.loads(curl["body"])
        created = requests.post(curl["url"], json=body, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
        assert ready["checks"]["redis"] == {"status": "ok"}, ready
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT) == 0, output.text()
        wait_until(
            lambda: not session_members(process.pid),
            STOP_TIMEOUT,
            "every process of the demo stack gone",
            output.text,
        )
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(10)
        output.close()
        process.stdout.close()
