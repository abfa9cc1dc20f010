"""The real stack, shared by tests/integration, tests/e2e, tests/faults and tests/deploy
(registered in tests/conftest.py): one emulator, one redis-server and one service
(gunicorn, 2 workers) per test session, each started only when a test asks for it;
variants of the service on demand; callers and their clients.

tests/emulator/conftest.py overrides `setup`, `emulator_process` and `emulator` with one
emulator per module for the emulator's own tests.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from local_stack.api_server import service_environment
from local_stack.clients import Caller, write_clients_file
from local_stack.redis_server import RedisServer

from service.storage.gateway import RedisGateway
from service.storage.store import BookingStore
from tests.support.emulator import EmulatorHandle, EmulatorSetup, default_config, start_emulator
from tests.support.stack import Client, ServiceProcess


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def setup(stack_dir: Path) -> EmulatorSetup:
    return default_config(stack_dir)


@pytest.fixture(scope="session")
def emulator_process(stack_dir: Path, setup: EmulatorSetup) -> Iterator[EmulatorHandle]:
    with start_emulator(stack_dir, setup.config) as handle:
        yield handle


@pytest.fixture
def emulator(emulator_process: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The shared emulator; faults a test adds are removed after it."""
    yield emulator_process
    emulator_process.clear_faults()


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(stack_dir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the test module's own, which its tests may flush and fill."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def flushed_redis(module_redis: RedisServer) -> RedisGateway:
    """A RedisGateway to the module's own Redis, emptied first."""
    client = redis.Redis.from_url(module_redis.url, decode_responses=True)
    client.flushdb()
    return RedisGateway(client)


@pytest.fixture
def flushed_store(flushed_redis: RedisGateway) -> BookingStore:
    """A BookingStore on the module's own Redis, emptied first."""
    return BookingStore(flushed_redis, ttl_seconds=3600)


@pytest.fixture(scope="session")
def callers(setup: EmulatorSetup) -> dict[str, Caller]:
    return {
        "eu": Caller("booking-eu", secrets.token_urlsafe(32), ["*"]),
        "us": Caller("booking-us", secrets.token_urlsafe(32), ["*"]),
        "restricted": Caller("rooms", secrets.token_urlsafe(32), [setup.user_with_policy]),
    }


@pytest.fixture(scope="session")
def clients_file(stack_dir: Path, callers: dict[str, Caller]) -> Path:
    return write_clients_file(stack_dir / "clients.json", list(callers.values()))


@pytest.fixture(scope="session")
def service_env(
    setup: EmulatorSetup,
    emulator_process: EmulatorHandle,
    redis_server: RedisServer,
    clients_file: Path,
) -> Callable[..., dict[str, str]]:
    """The environment of a service against the test stack, with a chosen credential."""

    def build(
        credential: str = "secret", emulator: EmulatorHandle | None = None, **overrides: str
    ) -> dict[str, str]:
        env = service_environment(
            emulator or emulator_process,
            setup.tenant_id,
            setup.client_id,
            redis_server.url,
            clients_file,
            # As on these machines: a system bundle that would hide the emulator's CA if the
            # service let it win.
            REQUESTS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
            CURL_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
            LOG_LEVEL="INFO",
        )
        if credential == "secret":
            env["AZURE_CLIENT_SECRET"] = setup.client_secret
        elif credential == "certificate":
            env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(setup.certificate_path)
        elif credential == "federated":
            token_file = setup.certificate_path.parent / f"federated-{uuid.uuid4()}.jwt"
            setup.federated_issuer.write_token(token_file, setup.federated_subject)
            env["AZURE_FEDERATED_TOKEN_FILE"] = str(token_file)
        env.update(overrides)
        return env

    return build


@pytest.fixture(scope="session")
def service(
    stack_dir: Path, service_env: Callable[..., dict[str, str]]
) -> Iterator[ServiceProcess]:
    process = ServiceProcess(stack_dir / "service", service_env()).start()
    yield process
    process.stop()


# The Graph budget and read timeout of short_budget_service: exhausting them takes seconds.
SHORT_GRAPH_BUDGET = 3.0
SHORT_GRAPH_READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def short_budget_service(
    tmp_path_factory: pytest.TempPathFactory, service_env: Callable[..., dict[str, str]]
) -> Iterator[ServiceProcess]:
    """A service of the module's own with a short Graph budget and read timeout, and the
    circuit breaker off: for tests of the retries inside one request's budget
    (tests/faults/test_breaker.py covers the circuit)."""
    process = ServiceProcess(
        tmp_path_factory.mktemp("short-budget-service"),
        service_env(
            GRAPH_BUDGET_SECONDS=str(SHORT_GRAPH_BUDGET),
            GRAPH_READ_TIMEOUT=str(SHORT_GRAPH_READ_TIMEOUT),
            GRAPH_CIRCUIT_FAILURES="0",
        ),
    ).start()
    yield process
    process.stop()


@pytest.fixture
def start_service(
    tmp_path: Path, service_env: Callable[..., dict[str, str]]
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start a service variant for one test: start_service(credential=..., VAR=value)."""
    started: list[ServiceProcess] = []

    def start(
        credential: str = "secret",
        workers: int = 2,
        emulator: EmulatorHandle | None = None,
        **overrides: str,
    ) -> ServiceProcess:
        directory = tmp_path / f"service-{len(started)}"
        env = service_env(credential, emulator, **overrides)
        process = ServiceProcess(directory, env, workers=workers)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def own_emulator(tmp_path: Path, setup: EmulatorSetup, organizer: str) -> Iterator[EmulatorHandle]:
    """An emulator of this test's own (the shared configuration, and `organizer`), for what
    cannot be undone on the shared one: revoking every token would leave the session
    service's cached tokens refused, and a later test would count an extra 401 call. Start
    the service with start_service(emulator=own_emulator)."""
    with start_emulator(tmp_path, setup.config) as handle:
        handle.set_user(setup.tenant_id, organizer, access_policy=True)
        yield handle


@pytest.fixture
def organizer(setup: EmulatorSetup, emulator_process: EmulatorHandle) -> str:
    """A new organizer, known to Graph, with the application access policy granted."""
    user_id = str(uuid.uuid4())
    emulator_process.set_user(setup.tenant_id, user_id, access_policy=True)
    return user_id


@pytest.fixture
def client(service: ServiceProcess, callers: dict[str, Caller]) -> Client:
    return Client(service.url, callers["eu"].key)


@pytest.fixture
def other_client(service: ServiceProcess, callers: dict[str, Caller]) -> Client:
    return Client(service.url, callers["us"].key)


@pytest.fixture
def restricted_client(service: ServiceProcess, callers: dict[str, Caller]) -> Client:
    return Client(service.url, callers["restricted"].key)
