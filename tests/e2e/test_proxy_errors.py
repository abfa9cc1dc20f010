"""The answers nginx (deploy/base/proxy/nginx.conf.template) and gunicorn give themselves,
before Flask sees a request: problem+json with X-Request-ID, like the service's own; the
limits both apply (8190-byte request and header lines, MAX_BODY_BYTES); what the proxy
forwards (X-Request-ID, X-Forwarded-For, keep-alive, whole bodies); and the pod's shutdown
with the proxy sidecar's preStop hook."""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import yaml
from local_stack.processes import wait_until

from tests.support.factories import booking
from tests.support.problems import PROBLEM, assert_problem
from tests.support.proxy import ProxyProcess
from tests.support.stack import REPO, Client, ServiceProcess

pytestmark = pytest.mark.e2e

LINE_LIMIT = 8190  # gunicorn's limit_request_line and limit_request_field_size
TIMEOUT = 2  # the proxy's header and body timeouts here, seconds
NGINX_ID = re.compile(r"^[0-9a-f]{32}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self, status: int, slug: str) -> dict:
        assert self.status == status, (self.status, self.body)
        assert self.headers["content-type"] == PROBLEM
        problem = json.loads(self.body)
        assert problem["type"] == f"urn:meeting-provisioning:problem:{slug}"
        assert problem["status"] == status
        assert problem["title"] and problem["detail"] and problem["instance"]
        assert problem["requestId"] == self.headers["x-request-id"]
        return problem


def raw(port: int, data: bytes, timeout: float = 10) -> Answer:
    """Send `data` as it is and read the one answer (until the server closes or the
    announced length has arrived)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer after {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return Answer(int(lines[0].split()[1]), headers, body)


def request_line(length: int, path: str = "/v1/meetings/") -> bytes:
    """A GET request line of exactly `length` bytes (without its CRLF)."""
    fixed = len(f"GET {path} HTTP/1.1")
    return f"GET {path}{'a' * (length - fixed)} HTTP/1.1".encode()


def header_line(length: int) -> bytes:
    return b"X-Padding: " + b"a" * (length - len(b"X-Padding: "))


@pytest.fixture(scope="module")
def proxy(service: ServiceProcess, tmp_path_factory) -> Iterator[ProxyProcess]:
    """nginx in front of the session's service, with short timeouts."""
    process = ProxyProcess(
        tmp_path_factory.mktemp("proxy"),
        f"127.0.0.1:{service.port}",
        service_env=service.env,
        overrides={"PROXY_HEADER_TIMEOUT": f"{TIMEOUT}s", "PROXY_BODY_TIMEOUT": f"{TIMEOUT}s"},
    ).start()
    yield process
    process.stop()


# --- nginx's own answers --------------------------------------------------------------------


def test_a_request_line_longer_than_the_limit_gets_414_from_the_proxy(proxy):
    answer = raw(proxy.port, request_line(LINE_LIMIT + 1) + b"\r\nHost: x\r\n\r\n")
    problem = answer.problem(414, "request-line-too-long")
    assert "shorter path" in problem["detail"]
    assert NGINX_ID.match(answer.headers["x-request-id"])
    # At the limit, the request reaches the service (which knows no such booking).
    answer = raw(proxy.port, request_line(LINE_LIMIT) + b"\r\nHost: x\r\n\r\n")
    answer.problem(401, "unauthenticated")


def test_a_header_line_longer_than_the_limit_gets_431_from_the_proxy(proxy):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: too-large-1\r\n"
    answer = raw(proxy.port, head + header_line(LINE_LIMIT + 1) + b"\r\n\r\n")
    problem = answer.problem(431, "request-header-too-large")
    assert answer.headers["x-request-id"] == "too-large-1"  # the caller's, echoed
    assert problem["instance"] == "/healthz"
    assert raw(proxy.port, head + header_line(LINE_LIMIT) + b"\r\n\r\n").status == 200
    # Too many large header lines together (4 x 8 KiB buffers).
    many = b"".join(header_line(6000) + b"\r\n" for _ in range(6))
    raw(proxy.port, head + many + b"\r\n").problem(431, "request-header-too-large")


def test_trace_gets_405_problem_json_with_allow_from_the_proxy(proxy):
    answer = raw(proxy.port, b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer.problem(405, "method-not-allowed")
    assert "PATCH" in answer.headers["allow"]
    assert NGINX_ID.match(answer.headers["x-request-id"])


def test_a_body_over_max_body_bytes_gets_413_before_reaching_gunicorn(proxy, client):
    limit = int(proxy.values["MAX_BODY_BYTES"])
    response = requests.post(
        f"{proxy.url}/v1/meetings",
        data=b"x" * (limit + 1),
        headers={**client.headers(), "Content-Type": "application/json"},
        timeout=10,
    )
    problem = assert_problem(response, 413, "body-too-large")
    assert str(limit) in problem["detail"] and "MAX_BODY_BYTES" in problem["detail"]
    assert problem["instance"] == "/v1/meetings"
    # A body at the limit passes the proxy: the service judges it (not JSON: 400).
    response = requests.post(
        f"{proxy.url}/v1/meetings",
        data=b"x" * limit,
        headers={**client.headers(), "Content-Type": "application/json"},
        timeout=10,
    )
    assert_problem(response, 400, "invalid-request")


def test_a_malformed_request_gets_400_from_the_proxy(proxy):
    answer = raw(proxy.port, b"NOT HTTP AT ALL\r\n\r\n")
    problem = answer.problem(400, "invalid-request")
    assert problem["instance"].startswith("urn:meeting-provisioning:request:")
    # A path that would need escaping in JSON is not echoed into the body.
    answer = raw(
        proxy.port, b'GET /v1/"q"\\ HTTP/1.1\r\nHost: x\r\n' + header_line(9000) + b"\r\n\r\n"
    )
    problem = answer.problem(431, "request-header-too-large")
    assert problem["instance"] == f"urn:meeting-provisioning:request:{problem['requestId']}"


@pytest.mark.parametrize(
    "sent",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # the head never ends
        b"POST /v1/meetings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # nor the body
    ],
    ids=["head", "body"],
)
def test_a_client_that_goes_quiet_is_closed_after_the_timeout(proxy, sent):
    """408: nginx does not answer a client that stopped sending; it resets the connection
    once client_header_timeout (the whole head) or client_body_timeout (between two reads
    of the body) has passed."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT + 5) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
        took = time.monotonic() - started
    assert received == b""
    assert TIMEOUT - 0.5 <= took <= TIMEOUT + 2


def test_gunicorn_down_gets_502_upstream_unavailable(start_service, tmp_path):
    service = start_service()
    proxy = ProxyProcess(tmp_path / "proxy", f"127.0.0.1:{service.port}").start()
    try:
        assert requests.get(f"{proxy.url}/healthz", timeout=5).status_code == 200
        service.stop()
        response = requests.get(
            f"{proxy.url}/v1/meetings/b-1", headers={"X-Request-ID": "down-1"}, timeout=10
        )
        problem = assert_problem(response, 502, "upstream-unavailable")
        assert response.headers["X-Request-ID"] == "down-1"
        assert problem["instance"] == "/v1/meetings/b-1"
        assert "retry" in problem["detail"]
        # and logged as a JSON line (nginx writes it after sending the answer)
        wait_until(lambda: '"proxy answered 502"' in proxy.log(), 5, "the 502 logged", proxy.log)
        # The proxy itself stays alive for its probes.
        assert requests.get(f"{proxy.url}/_proxy/healthz", timeout=5).status_code == 200
    finally:
        proxy.stop()


def test_the_services_own_errors_pass_the_proxy_unchanged(proxy, service):
    direct = requests.get(f"{service.url}/v1/meetings/b-1", headers={"X-Request-ID": "r-1"})
    proxied = requests.get(f"{proxy.url}/v1/meetings/b-1", headers={"X-Request-ID": "r-1"})
    assert proxied.status_code == direct.status_code == 401
    assert proxied.json() == direct.json()
    assert proxied.headers["WWW-Authenticate"] == direct.headers["WWW-Authenticate"]
    assert proxied.headers["X-Request-ID"] == "r-1"


def test_request_ids_through_the_proxy(proxy):
    # The caller's id reaches the service unchanged and comes back.
    given = requests.get(f"{proxy.url}/healthz", headers={"X-Request-ID": "abc.1:2"}, timeout=5)
    assert given.headers["X-Request-ID"] == "abc.1:2"
    # Without one, the service uses nginx's, so both logs carry the same id.
    made = requests.get(f"{proxy.url}/healthz", timeout=5)
    assert NGINX_ID.match(made.headers["X-Request-ID"])
    # One the service does not accept is still forwarded as it is; the service replaces it.
    odd = requests.get(f"{proxy.url}/healthz", headers={"X-Request-ID": "a b"}, timeout=5)
    assert UUID.match(odd.headers["X-Request-ID"])


# --- what the proxy forwards, seen by an upstream that echoes it ------------------------------


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def answer(self, body: bytes) -> None:
        payload = json.dumps(
            {
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "clientPort": self.client_address[1],
                "bodyLength": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_proxy(tmp_path) -> Iterator[ProxyProcess]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = ProxyProcess(tmp_path / "proxy", f"127.0.0.1:{server.server_address[1]}").start()
    try:
        yield proxy
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()


def test_forwarded_headers_keep_alive_and_whole_bodies(echo_proxy):
    session = requests.Session()
    seen = session.get(
        f"{echo_proxy.url}/x",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Request-ID": "given-1"},
        timeout=5,
    ).json()
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-request-id"] == "given-1"
    made = session.get(f"{echo_proxy.url}/x", timeout=5).json()
    assert NGINX_ID.match(made["headers"]["x-request-id"])
    assert made["headers"]["x-forwarded-for"] == "127.0.0.1"
    # One connection to the upstream, kept alive between requests.
    assert made["clientPort"] == seen["clientPort"]
    # A chunked body arrives whole, with its length: nginx read it all first.
    chunks = (part for part in [b"{", b'"a": ', b"1}"])
    posted = session.post(f"{echo_proxy.url}/x", data=chunks, timeout=5).json()
    assert posted["bodyLength"] == 8
    assert posted["headers"]["content-length"] == "8"
    assert "transfer-encoding" not in posted["headers"]


# --- gunicorn's own answers, reached directly (tests, `docker run`) --------------------------


def test_gunicorn_answers_an_over_long_request_line_with_414_problem_json(service):
    answer = raw(service.port, request_line(LINE_LIMIT + 1) + b"\r\nHost: x\r\n\r\n")
    problem = answer.problem(414, "request-line-too-long")
    assert f"{LINE_LIMIT} bytes" in problem["detail"]
    assert UUID.match(answer.headers["x-request-id"])
    assert answer.headers["connection"] == "close"
    # At the limit gunicorn takes it, as the proxy does.
    raw(service.port, request_line(LINE_LIMIT) + b"\r\nHost: x\r\n\r\n").problem(
        401, "unauthenticated"
    )


def test_gunicorn_answers_an_over_long_header_with_431_problem_json(service):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    answer = raw(service.port, head + header_line(LINE_LIMIT + 1) + b"\r\n\r\n")
    answer.problem(431, "request-header-too-large")
    assert raw(service.port, head + header_line(LINE_LIMIT) + b"\r\n\r\n").status == 200
    many = b"".join(f"X-H{i}: 1\r\n".encode() for i in range(101))
    raw(service.port, head + many + b"\r\n").problem(431, "request-header-too-large")


def test_gunicorn_answers_a_malformed_request_with_400_problem_json(service):
    answer = raw(service.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
    problem = answer.problem(400, "invalid-request")
    assert problem["instance"] == f"urn:meeting-provisioning:request:{problem['requestId']}"


# --- the pod's shutdown, with the proxy sidecar's preStop hook ------------------------------


def pre_stop_hook() -> str:
    """The proxy sidecar's preStop command (deploy/base/deployment.yaml), as written."""
    deployment = yaml.safe_load((REPO / "deploy" / "base" / "deployment.yaml").read_text())
    [proxy] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "proxy"
    ]
    command = proxy["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    return command[2]


def refuses(url: str) -> bool:
    try:
        requests.get(f"{url}/_proxy/healthz", timeout=1)
    except requests.ConnectionError:
        return True
    return False


def test_pod_shutdown_the_proxy_serves_through_the_delay_and_delivers_in_flight_answers(
    start_service, emulator, callers, organizer, setup, tmp_path
):
    """As the kubelet does it: SIGTERM to gunicorn and, at the same time, the proxy's
    preStop hook (its /tmp is the proxy's state directory here). New requests are served
    through the proxy during PRE_STOP_DELAY_SECONDS; then nginx stops accepting, delivers
    the answer of a request still in gunicorn, and exits; so does gunicorn."""
    delay = 2
    service = start_service(PRE_STOP_DELAY_SECONDS=str(delay))
    proxy = ProxyProcess(tmp_path / "proxy", f"127.0.0.1:{service.port}").start()
    other = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, other, access_policy=True)
    hook = pre_stop_hook().replace("/tmp/", f"{proxy.directory}/")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            emulator.add_fault(target="createOrGet", latencyMs=5000, organizerId=organizer, count=1)
            in_flight = pool.submit(Client(proxy.url, callers["eu"].key).post, booking(organizer))
            time.sleep(1.0)  # inside its Graph call
            assert not in_flight.done()

            service.process.send_signal(signal.SIGTERM)
            stopping = subprocess.Popen(
                ["/bin/sh", "-c", hook],
                env={**os.environ, "PRE_STOP_DELAY_SECONDS": str(delay)},
            )
            signalled = time.monotonic()
            # During the delay, a new booking through the proxy is served.
            late = Client(proxy.url, callers["eu"].key).post(booking(other))
            assert late.status_code == 201, late.text
            assert time.monotonic() - signalled < delay
            # Then nginx stops accepting, while the slow request is still in flight ...
            wait_until(lambda: refuses(proxy.url), delay + 3, "the proxy to stop accepting")
            assert time.monotonic() - signalled >= delay - 0.5
            assert not in_flight.done()
            # ... whose answer it still delivers.
            answer = in_flight.result(timeout=15)
        assert answer.status_code == 201, answer.text
        assert stopping.wait(15) == 0, "the hook returns once nginx has exited"
        assert proxy.process.wait(5) == 0
        assert service.process.wait(15) == 0
        took = time.monotonic() - signalled
        assert took < delay + 30, f"stopped after {took:.1f} s"
    finally:
        proxy.stop()
