"""REDIS_AUTH=entra against a Redis that insists on Entra ID tokens (the emulator's Redis
front before a redis-server, graph_emulator.redis_front), with tokens of TOKEN_LIFETIME
seconds: a booking storm across two token expiries, a credential that stops working and
comes back, and the front refusing tokens Azure would refuse.

The token-expiry table of the issue's closing note is printed by the storm (-s shows it).
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests
from local_stack.clients import Caller
from local_stack.redis_server import RedisServer

from tests.support.emulator import EmulatorHandle, EmulatorSetup, start_emulator
from tests.support.factories import booking
from tests.support.fault_table import meeting_counts
from tests.support.metrics import scrape, value
from tests.support.problems import assert_problem
from tests.support.redis_topologies import Cluster
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

TOKEN_LIFETIME = 15  # seconds: the storm crosses two expiries in about 40 s
REDIS_AUDIENCE = "https://redis.azure.com"


@pytest.fixture(scope="module")
def entra_redis(
    tmp_path_factory: pytest.TempPathFactory, setup: EmulatorSetup
) -> Iterator[EmulatorHandle]:
    """An emulator of the session's tenant and app whose Redis tokens live TOKEN_LIFETIME
    seconds, serving the Redis front before a redis-server of this module."""
    directory = tmp_path_factory.mktemp("entra-redis")
    backend = RedisServer(directory / "redis").start()
    config = {**setup.config, "redisTokenLifetimeSeconds": TOKEN_LIFETIME}
    try:
        with start_emulator(directory, config, redis_backend_port=backend.port) as emulator:
            yield emulator
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def entra_service(
    tmp_path_factory: pytest.TempPathFactory,
    service_env: Callable[..., dict[str, str]],
    entra_redis: EmulatorHandle,
) -> Iterator[ServiceProcess]:
    env = service_env(
        emulator=entra_redis,
        REDIS_URL=f"rediss://127.0.0.1:{entra_redis.redis_front_port}/0",
        REDIS_CA_BUNDLE=entra_redis.ca_bundle,
        REDIS_AUTH="entra",
        ORGANIZER_MONTHLY_LIMIT="0",
    )
    process = ServiceProcess(tmp_path_factory.mktemp("entra-service"), env).start()
    yield process
    process.stop()


@pytest.fixture
def entra_organizer(setup: EmulatorSetup, entra_redis: EmulatorHandle) -> str:
    user_id = str(uuid.uuid4())
    entra_redis.set_user(setup.tenant_id, user_id, access_policy=True)
    return user_id


def front_stats(emulator: EmulatorHandle) -> dict[str, Any]:
    answer = emulator.session().get(f"{emulator.base_url}/_emulator/redis-front", timeout=5)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def ready(service: ServiceProcess) -> dict[str, Any]:
    answer = requests.get(f"{service.url}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.5)


def test_a_booking_storm_across_two_token_expiries(
    entra_service, entra_redis, callers: dict[str, Caller], entra_organizer
):
    storm(entra_service, entra_redis, Client(entra_service.url, callers["eu"].key),
          entra_organizer, "one node, rediss://")  # fmt: skip


def test_a_booking_storm_on_a_cluster_across_two_token_expiries(
    tmp_path_factory: pytest.TempPathFactory,
    service_env: Callable[..., dict[str, str]],
    setup: EmulatorSetup,
    callers: dict[str, Caller],
):
    """The same on a Redis Cluster of 3 primaries, each behind its own front (the nodes
    announce the fronts' ports, so MOVED and CLUSTER SLOTS lead from front to front)."""
    directory = tmp_path_factory.mktemp("entra-cluster")
    cluster = Cluster(directory / "redis").start(size=3, replicas=0)
    config = {**setup.config, "redisTokenLifetimeSeconds": TOKEN_LIFETIME}
    ports = [node.port for node in cluster.nodes]
    try:
        with start_emulator(directory, config, redis_backend_port=ports) as emulator:
            seeds = ",".join(f"127.0.0.1:{port}" for port in emulator.redis_front_ports)
            env = service_env(
                emulator=emulator,
                REDIS_URL=f"rediss+cluster://{seeds}",
                REDIS_CA_BUNDLE=emulator.ca_bundle,
                REDIS_AUTH="entra",
                ORGANIZER_MONTHLY_LIMIT="0",
            )
            service = ServiceProcess(directory / "service", env).start()
            try:
                organizer = str(uuid.uuid4())
                emulator.set_user(setup.tenant_id, organizer, access_policy=True)
                client = Client(service.url, callers["eu"].key)
                storm(service, emulator, client, organizer, "Redis Cluster, rediss+cluster://")
            finally:
                service.stop()
    finally:
        cluster.stop()


def storm(
    service: ServiceProcess,
    emulator: EmulatorHandle,
    client: Client,
    organizer: str,
    topology: str,
) -> None:
    """8 threads book for 2.5 token lifetimes, every booking sent by all of them at once
    (one creates, the others wait for its lock or replay it), each read back: no error, one
    meeting per booking, no connection closed for an expired token, every renewal handed
    to the connections. Prints a row of the token-expiry table."""
    assert ready(service)["checks"]["redis"] == {"status": "ok"}
    before = front_stats(emulator)
    start = time.monotonic()
    duration = 2.5 * TOKEN_LIFETIME
    answers: list[requests.Response] = []
    external_ids: set[str] = set()
    threads = 8
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        # Bounded in time and in count: at most 2,000 bookings.
        for _ in range(2000):
            if time.monotonic() - start > duration:
                break
            body = booking(organizer)
            posted = list(pool.map(client.post, [body] * threads))
            answers += posted
            read = client.get(body["bookingId"])
            answers.append(read)
            external_ids.update(a.json()["externalId"] for a in posted if a.ok)
            time.sleep(0.05)  # a storm, not a flood: the machine is shared
    elapsed = time.monotonic() - start
    errors = [(a.status_code, a.text[:200]) for a in answers if a.status_code not in (200, 201)]
    counts = {e: c["created"] for e, c in meeting_counts(emulator, external_ids).items()}
    duplicates = sum(created - 1 for created in counts.values() if created > 1)
    after = front_stats(emulator)
    samples = scrape(service.url)
    renewed = value(samples, "mps_redis_token_renewals_total", outcome="renewed")
    reauthentications = value(samples, "mps_redis_reauthentications_total")
    print(
        "\n| topology | token lifetime | expiries crossed | requests | errors | duplicates "
        "| re-authentications (service) | logins at the front | closed for an expired token |"
        f"\n| {topology} | {TOKEN_LIFETIME} s | {int(elapsed // TOKEN_LIFETIME)} "
        f"| {len(answers)} | {len(errors)} | {duplicates} | {reauthentications:g} "
        f"| {after['logins'] - before['logins']} "
        f"| {after['expiredCloses'] - before['expiredCloses']} |"
    )
    assert elapsed >= 2 * TOKEN_LIFETIME
    assert errors == []
    assert len(external_ids) * threads + len(external_ids) == len(answers)
    assert duplicates == 0 and set(counts.values()) == {1}
    assert after["expiredCloses"] == before["expiredCloses"]
    assert after["refused"] == before["refused"]
    # Each worker renews at 70% of a lifetime: at least two renewals each in 2.5 lifetimes.
    assert renewed >= 2 * 2
    assert reauthentications >= 2 * 2
    log = service.log_path.read_text(errors="replace")
    assert "redis token renewed (background)" in log


def test_idle_pooled_connections_stay_logged_in_across_expiries(
    entra_service, entra_redis, callers: dict[str, Caller], entra_organizer
):
    """No request for two token lifetimes: the renewals AUTH the idle pooled connections,
    so the front closes none of them, and the next request uses them."""
    client = Client(entra_service.url, callers["eu"].key)
    body = booking(entra_organizer)
    assert client.post(body).status_code == 201
    before = front_stats(entra_redis)
    time.sleep(2 * TOKEN_LIFETIME + 2)
    after = front_stats(entra_redis)
    assert after["expiredCloses"] == before["expiredCloses"]
    assert after["logins"] > before["logins"]  # the renewals, sent on idle connections
    assert client.get(body["bookingId"]).status_code == 200
    assert front_stats(entra_redis)["connections"] == after["connections"]


def test_a_credential_that_stops_working_is_redis_unavailable_until_it_works_again(
    entra_service, entra_redis, callers: dict[str, Caller], entra_organizer
):
    client = Client(entra_service.url, callers["eu"].key)
    kept = booking(entra_organizer)
    assert client.post(kept).status_code == 201
    # Entra ID refuses the app from now on: the Redis token cannot be renewed, and the
    # front closes the connections once the one they hold expires.
    entra_redis.add_fault(target="token", status=400, errorCode="invalid_client")
    try:

        def redis_failing() -> bool:
            return ready(entra_service)["checks"]["redis"]["status"] == "failing"

        wait_for(redis_failing, TOKEN_LIFETIME + 15, "/readyz shows Redis failing")
        check = ready(entra_service)
        assert check["status"] == "degraded"
        assert check["checks"]["redis"]["detail"].startswith(
            "the Redis token could not be renewed: Entra ID answered invalid_client"
        ), check
        answer = client.get(kept["bookingId"])
        assert_problem(answer, 503, "store-unavailable")
        assert answer.headers["Retry-After"]
        # POST still books from Graph directly (the Graph token is an hour's, held).
        created = client.post(booking(entra_organizer))
        assert created.status_code == 201, created.text
    finally:
        entra_redis.clear_faults()
    # MSAL replays an Entra ID 400 from its own cache for 60 s (msal.throttled_http_client),
    # so recovery takes up to a minute after the last refusal.
    wait_for(
        lambda: ready(entra_service)["checks"]["redis"] == {"status": "ok"},
        90,
        "/readyz shows Redis ok again",
    )
    assert client.get(kept["bookingId"]).status_code == 200
    samples = scrape(entra_service.url)
    assert value(samples, "mps_redis_token_renewals_total", outcome="failed") >= 1
    log = entra_service.log_path.read_text(errors="replace")
    assert "redis token renewal failed" in log
    assert access_statuses(log) and 500 not in access_statuses(log)


def access_statuses(log: str) -> set[int]:
    """The statuses of the service's access log lines (JSON)."""
    found = set()
    for line in log.splitlines():
        if line.startswith("{"):
            status = json.loads(line).get("status")
            if isinstance(status, int):
                found.add(status)
    return found


def raw_front(emulator: EmulatorHandle) -> redis.Redis:
    """A client of the front that sends nothing on connect (RESP2, no credentials)."""
    assert emulator.redis_front_port is not None
    return redis.Redis(
        host="127.0.0.1",
        port=emulator.redis_front_port,
        ssl=True,
        ssl_ca_certs=emulator.ca_bundle,
        protocol=2,
        socket_timeout=5,
        retry_on_error=[],
    )


def redis_token(emulator: EmulatorHandle, setup: EmulatorSetup, **claims: Any) -> str:
    return emulator.caller_token(
        tenantId=setup.tenant_id,
        appId=setup.client_id,
        version=1,
        audience=claims.pop("aud", REDIS_AUDIENCE),
        roles=[],
        claims=claims,
    )


def test_the_front_refuses_what_azure_refuses(entra_redis, setup: EmulatorSetup):
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{setup.tenant_id}:{setup.client_id}"))
    client = raw_front(entra_redis)
    with pytest.raises(redis.AuthenticationError, match="NOAUTH|Authentication required"):
        client.get("anything")
    refused = {
        "wrong audience": redis_token(entra_redis, setup, aud="https://graph.microsoft.com"),
        "expired token": redis_token(entra_redis, setup, exp=int(time.time()) - 5),
        "the user name is not the token's oid": redis_token(
            entra_redis, setup, oid=str(uuid.uuid4())
        ),
    }
    for token in refused.values():
        with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
            client.execute_command("AUTH", oid, token)
    assert set(front_stats(entra_redis)["refused"]) >= set(refused)
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        client.execute_command("AUTH", oid, "not.a.token")
    with pytest.raises(redis.AuthenticationError, match="NOAUTH|Authentication required"):
        client.get("anything")
    # A good token logs in, and a connection whose token expires without a new AUTH is
    # closed, as Azure does.
    short = redis_token(entra_redis, setup, exp=int(time.time()) + 3)
    assert client.execute_command("AUTH", oid, short)
    assert client.ping()
    closed_before = front_stats(entra_redis)["expiredCloses"]
    time.sleep(5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert front_stats(entra_redis)["expiredCloses"] == closed_before + 1
    client.close()


def test_the_front_speaks_tls_only(entra_redis):
    assert entra_redis.redis_front_port is not None
    with socket.create_connection(("127.0.0.1", entra_redis.redis_front_port), timeout=5) as raw:
        raw.sendall(b"PING\r\n")
        try:
            answer = raw.recv(100)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert b"PONG" not in answer


def test_blocking_commands_pass_the_front(entra_redis, setup: EmulatorSetup):
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{setup.tenant_id}:{setup.client_id}"))
    client = raw_front(entra_redis)
    assert client.execute_command("AUTH", oid, redis_token(entra_redis, setup))
    key = f"list-{uuid.uuid4()}"
    started = time.monotonic()
    assert client.blpop([key], timeout=1) is None
    assert time.monotonic() - started >= 0.9
    client.rpush(key, "x")
    assert client.blpop([key], timeout=1) == (key.encode(), b"x")
    client.close()
