"""The fault suite runs on the shared real stack (tests/support/fixtures.py: one emulator
and one redis-server per session, service variants per test) and adds what faults need:
Redis servers of a test's own that it can stop, kill and pause, and the fault table.

Run it alone with `pytest tests/faults` (or `-m faults`); the table of requests sent and
meetings created per fault is printed at the end and written to fault-table.md under
pytest's base temporary directory.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from local_stack.redis_server import RedisServer

from tests.support.fault_table import TABLE, Tally, render_table


def pytest_terminal_summary(terminalreporter) -> None:
    if TABLE:
        terminalreporter.write_sep("-", "fault table (meetings per externalId at the emulator)")
        for line in render_table(TABLE):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def fault_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    if TABLE:
        path = tmp_path_factory.getbasetemp() / "fault-table.md"
        path.write_text("\n".join(render_table(TABLE)) + "\n", encoding="utf-8")


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """This test's row of the fault table; `tally.settle(...)` asserts the invariant."""
    found = Tally(fault=request.node.name.removeprefix("test_"))
    yield found
    for client in found.clients:
        client.session.close()
    if found.row is not None:
        TABLE.append(found.row)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start a redis-server of this test's own (stopped, or resumed and stopped, after it)."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}").start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)  # a paused one could not stop
        server.stop()
