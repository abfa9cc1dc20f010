"""The emulator keeps HTTP/1.1 connections alive, as Graph does, and never lets one drift.

A kept-alive connection is only safe if every request's body is consumed to its end before
the next request line is read; these tests send requests whose bodies the app never reads
and then check that the next request on the same connection is still understood.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from graph_emulator.keep_alive import RequestBody

from tests.support.emulator import EmulatorHandle, EmulatorSetup

pytestmark = pytest.mark.emulator

HEALTH = "/_emulator/health"


def _tls_context(emulator: EmulatorHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emulator.ca_bundle)


@pytest.fixture
def connection(emulator: EmulatorHandle) -> Iterator[http.client.HTTPSConnection]:
    """One client connection; http.client opens a new socket only if the last one closed."""
    client = http.client.HTTPSConnection(
        "127.0.0.1", emulator.port, context=_tls_context(emulator), timeout=10
    )
    yield client
    client.close()


def _get(client: http.client.HTTPSConnection, path: str = HEALTH) -> http.client.HTTPResponse:
    client.request("GET", path)
    response = client.getresponse()
    response.read()
    return response


def _raw_exchange(emulator: EmulatorHandle, request: bytes) -> bytes:
    """Send raw bytes over TLS and read until the emulator closes the connection."""
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as plain:
        with _tls_context(emulator).wrap_socket(plain, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):  # a connection left open times out here
                received += chunk
            return received


def _create_or_get_path(setup: EmulatorSetup) -> str:
    return f"/v1.0/users/{setup.user_with_policy}/onlineMeetings/createOrGet"


def test_one_connection_serves_many_requests(
    emulator: EmulatorHandle, connection: http.client.HTTPSConnection
) -> None:
    first = _get(connection)
    socket_used = connection.sock

    answers = [_get(connection) for _ in range(5)]

    assert first.status == 200 and first.getheader("Connection") is None
    assert all(answer.status == 200 for answer in answers)
    assert socket_used is not None and connection.sock is socket_used  # never reopened


def test_a_requests_session_keeps_one_connection_for_many_graph_calls(
    graph: Any, setup: EmulatorSetup
) -> None:
    adapter = graph.http.get_adapter(graph.emulator.base_url)
    local_ports = set()
    for _ in range(5):
        created = graph.create_or_get(
            setup.user_with_policy, {"externalId": str(uuid.uuid4()), "subject": "kept alive"}
        )
        assert created.status_code == 201
        (pool,) = [adapter.poolmanager.pools[key] for key in adapter.poolmanager.pools.keys()]
        (idle,) = [connection for connection in pool.pool.queue if connection is not None]
        local_ports.add(idle.sock.getsockname()[1])  # a new connection has a new port

    assert len(local_ports) == 1


def test_a_body_the_app_never_read_does_not_reach_the_next_request(
    setup: EmulatorSetup, connection: http.client.HTTPSConnection
) -> None:
    # The token is refused, and a body that is not JSON is not even recorded: all of its
    # megabyte is left unread by the app.
    connection.request(
        "POST",
        _create_or_get_path(setup),
        body=b"s" * 1_000_000,
        headers={"Authorization": "Bearer not-a-token", "Content-Type": "text/plain"},
    )
    refused = connection.getresponse()
    refused.read()
    socket_used = connection.sock

    after = _get(connection)

    assert refused.status == 401
    assert after.status == 200 and connection.sock is socket_used


def test_a_chunked_body_the_app_never_read_is_skipped_too(
    connection: http.client.HTTPSConnection,
) -> None:
    # The health check takes GET only: 405, and the chunked body is never read by the app.
    pieces = (b"x" * 10_000 for _ in range(20))
    connection.request("POST", HEALTH, body=pieces, encode_chunked=True)
    refused = connection.getresponse()
    refused.read()
    socket_used = connection.sock

    after = _get(connection)

    assert refused.status == 405
    assert after.status == 200 and connection.sock is socket_used


def test_pipelined_requests_are_answered_in_order(emulator: EmulatorHandle) -> None:
    request = b"GET %s HTTP/1.1\r\nHost: emulator\r\n%s\r\n"
    received = _raw_exchange(
        emulator,
        request % (HEALTH.encode(), b"")
        + request % (b"/no/such/path", b"")
        + request % (HEALTH.encode(), b"Connection: close\r\n"),
    )

    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200", b"404", b"200"]


def test_connection_close_is_honoured(emulator: EmulatorHandle) -> None:
    request = b"GET %s HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\n\r\n"
    received = _raw_exchange(emulator, request % HEALTH.encode())

    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in received


def test_an_http_1_0_client_gets_one_answer_per_connection(emulator: EmulatorHandle) -> None:
    received = _raw_exchange(emulator, b"GET %s HTTP/1.0\r\n\r\n" % HEALTH.encode())

    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in received


def test_a_body_too_long_to_skip_closes_the_connection_after_the_answer(
    emulator: EmulatorHandle,
) -> None:
    # Announced, not sent: the emulator answers at once and closes rather than wait for
    # 64 MiB it would only throw away.
    received = _raw_exchange(
        emulator,
        b"POST %s HTTP/1.1\r\nHost: emulator\r\nContent-Length: %d\r\n\r\n"
        % (HEALTH.encode(), 64 * 1024 * 1024),
    )

    assert received.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nConnection: close\r\n" in received


def test_a_reset_fault_drops_a_kept_alive_connection(
    emulator: EmulatorHandle, setup: EmulatorSetup, connection: http.client.HTTPSConnection
) -> None:
    token = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)
    assert _get(connection).status == 200
    emulator.add_fault(target="createOrGet", reset=True, count=1)

    connection.request(
        "POST",
        _create_or_get_path(setup),
        body=json.dumps({"externalId": str(uuid.uuid4())}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with pytest.raises(ConnectionResetError):
        connection.getresponse()

    assert emulator.stats()["calls"]["createOrGet"] == {"reset": 1}


def test_the_app_cannot_read_past_the_body_into_the_next_request() -> None:
    stream = io.BytesIO(b"0123456789GET / HTTP/1.1\r\n")
    body = RequestBody(stream, 10)

    assert body.read() == b"0123456789"
    assert body.read(100) == b"" and body.complete
    assert stream.read() == b"GET / HTTP/1.1\r\n"


def test_skipping_stops_at_the_body_end_and_at_the_limit() -> None:
    stream = io.BytesIO(b"x" * 100 + b"next")
    skipped = RequestBody(stream, 100)
    assert skipped.read(10) == b"x" * 10
    assert skipped.skip_rest(limit=1000) and stream.read() == b"next"

    assert RequestBody(io.BytesIO(b"x" * 100), 100).longer_than(99)
    assert not RequestBody(io.BytesIO(b"x" * 100), 100).longer_than(100)


def test_a_body_cut_short_cannot_be_skipped() -> None:
    cut = RequestBody(io.BytesIO(b"x" * 10), 100)

    assert not cut.skip_rest(limit=1000)
    assert not cut.complete
