"""wrk (2 threads, 32 connections: issue 11's load) against one server, for a fixed time,
with tests/bench/requests.lua rotating over a list of requests; its figures parsed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("requests.lua")
THREADS = 2
CONNECTIONS = 32
MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: str = ""  # JSON text, one line


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors (connect, read, write, timeout) + answers other than 2xx

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def write_requests(path: Path, requests: Sequence[Request]) -> Path:
    """The file requests.lua reads (BENCH_REQUESTS): METHOD, PATH and BODY, tab-separated."""
    lines = []
    for request in requests:
        if "\t" in request.path + request.body or "\n" in request.path + request.body:
            raise ValueError(f"a request must fit on one line without tabs: {request}")
        lines.append(f"{request.method}\t{request.path}\t{request.body}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is missing: `make wrk` (Debian: apt-get install wrk)")
    return found


def run_wrk(url: str, requests_file: Path, api_key: str, seconds: float) -> WrkResult:
    """wrk against `url` for `seconds`, each request with `api_key` as its bearer key."""
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests_file),
        "BENCH_AUTHORIZATION": f"Bearer {api_key}",
    }
    command = [
        wrk_executable(),
        f"--threads={THREADS}",
        f"--connections={CONNECTIONS}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        url,
    ]
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith(MARKER):
            figures = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=figures["requests"],
                seconds=figures["duration_us"] / 1e6,
                p50_ms=figures["p50_us"] / 1000,
                p99_ms=figures["p99_us"] / 1000,
                errors=figures["socket_errors"] + figures["non2xx"],
            )
    raise RuntimeError(f"wrk printed no result (exit {finished.returncode}):\n{finished.stderr}")
