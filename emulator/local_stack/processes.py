"""Free loopback ports, bounded waiting, and stopping a child process."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

START_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A part of the local stack is missing, or did not start in time."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    on_fail: Callable[[], str] = lambda: "",
) -> None:
    """Poll `check` until it is true; bounded, with the reason in the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise StackError(f"{what} not reached within {timeout} s\n{on_fail()}")


def wait_for_start(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    what: str,
    timeout: float = START_TIMEOUT,
    output: Callable[[], str] | None = None,
) -> None:
    """Poll `ready` until it is true. StackError if `process` exits first or `timeout`
    passes, ending with `output()` (its log) or, without one, pointing at the output the
    process wrote to ours."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            failure = f"{what} exited with {process.returncode}"
        elif time.monotonic() > deadline:
            failure = f"{what} did not start within {timeout} s"
        else:
            time.sleep(0.05)
            continue
        shown = f":\n{output()}" if output else " (see its output above)"
        raise StackError(failure + shown)


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; the exit status (None: never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    return process.returncode
