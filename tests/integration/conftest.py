"""The core in process: the service's collaborators built by `Services.from_settings`, as
a worker builds them, against the session's redis-server and Graph emulator, with short
budgets and waits so that the branches of provisioning and the lifecycle answer in
milliseconds to a few seconds. No gunicorn, no HTTP in front of the core.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_stack.clients import Caller as StackCaller
from local_stack.processes import wait_until

from service.config import Settings
from service.domain import options as meeting_options
from service.domain.booking import BookingRequest, external_id
from service.domain.callers import Caller
from service.wiring import Services
from tests.support.emulator import EmulatorHandle, EmulatorSetup

# Short enough that a test waits seconds at most, long enough for a busy machine; in the
# order config checks (LOCK_TTL_SECONDS > TOKEN_TIMEOUT_SECONDS + GRAPH_BUDGET_SECONDS).
# The circuit is off: a fault injected by one test must not open it for the next.
CORE_SETTINGS = {
    "TOKEN_TIMEOUT_SECONDS": "2",
    "GRAPH_BUDGET_SECONDS": "4",
    "GRAPH_READ_TIMEOUT": "3",
    "LOCK_TTL_SECONDS": "7",
    "SINGLE_FLIGHT_WAIT_SECONDS": "3",
    "GRAPH_CIRCUIT_FAILURES": "0",
}
# The organizer pools of ORGANIZER_POOLS_FILE; each member a new user of the emulator.
POOLS = ("rooms", "east", "west")
ROOMS_SIZE = 2


@pytest.fixture(scope="module")
def pools(setup: EmulatorSetup, emulator_process: EmulatorHandle) -> dict[str, list[str]]:
    """Pools of new organizers, so no other test has counted meetings for them."""
    found = {
        pool: [str(uuid.uuid4()) for _ in range(ROOMS_SIZE if pool == "rooms" else 1)]
        for pool in POOLS
    }
    for members in found.values():
        for member in members:
            emulator_process.set_user(setup.tenant_id, member, access_policy=True)
    return found


@pytest.fixture(scope="module")
def pools_file(tmp_path_factory: pytest.TempPathFactory, pools: dict[str, list[str]]) -> Path:
    path = tmp_path_factory.mktemp("pools") / "pools.json"
    path.write_text(json.dumps({"pools": pools}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def core_env(
    service_env: Callable[..., dict[str, str]], pools_file: Path
) -> Callable[..., dict[str, str]]:
    """The environment of a worker against the test stack, with CORE_SETTINGS."""

    def build(**overrides: str) -> dict[str, str]:
        return service_env(
            **{**CORE_SETTINGS, "ORGANIZER_POOLS_FILE": str(pools_file), **overrides}
        )

    return build


@pytest.fixture(scope="module")
def make_services(core_env: Callable[..., dict[str, str]]) -> Callable[..., Services]:
    """`make_services(VAR=value)`: the collaborators of a worker with those settings, one
    per set of settings in a module (two are like two workers or replicas)."""
    built: dict[tuple[tuple[str, str], ...], Services] = {}

    def make(**overrides: str) -> Services:
        key = tuple(sorted(overrides.items()))
        if key not in built:
            built[key] = Services.from_settings(Settings.from_env(core_env(**overrides)))
        return built[key]

    return make


@pytest.fixture(scope="module")
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()


@pytest.fixture(scope="module")
def caller(services: Services, callers: dict[str, StackCaller]) -> Caller:
    """The caller "eu" (any organizer), as the service loaded it from CLIENTS_FILE."""
    return services.settings.callers[callers["eu"].id]


@pytest.fixture
def new_request() -> Callable[..., BookingRequest]:
    """`new_request(organizer_id=..., subject=..., options={...})`: a request for a new
    booking (unless `booking_id` is given), built as the API's schema builds it."""

    def build(**fields: Any) -> BookingRequest:
        fields.setdefault("booking_id", f"core-{uuid.uuid4()}")
        if "options" in fields:
            fields["options"] = meeting_options.parse(fields["options"])
        return BookingRequest.create(**fields)

    return build


@pytest.fixture
def external_id_of(services: Services, caller: Caller) -> Callable[..., str]:
    """`external_id_of(booking_id, generation=0)`: the externalId Graph gets for it."""

    def derive(booking_id: str, generation: int = 0) -> str:
        return external_id(
            services.settings.external_id_namespace, caller.id, booking_id, generation
        )

    return derive


# Options a new meeting lacks (Teams' default is "enabled"): provisioning with them takes
# a createOrGet and then a PATCH, both under the booking's lock.
OPTIONS_TO_PATCH = {"allowMeetingChat": "disabled"}


@pytest.fixture
def inside_options_patch(emulator: EmulatorHandle) -> Callable[[str], None]:
    """`inside_options_patch(external_id)` returns once Graph has answered that
    externalId's createOrGet: its requester holds the booking's lock (taken before the
    createOrGet, kept until the record is stored) and, asking for OPTIONS_TO_PATCH, sends the
    PATCH next; a latency fault of the test's keeps that PATCH slow."""

    def wait(ext_id: str) -> None:
        wait_until(
            lambda: emulator.meetings_for(ext_id)["calls"] >= 1, 5, f"createOrGet of {ext_id}"
        )

    return wait
