"""National clouds end to end: each cloud's service against an emulator of that cloud.

Every emulator here plays one Graph audience and mints tokens only for the scope
`<that Graph root>/.default`, as Entra does in each cloud. The expected roots are copied
from the contract's clouds table (shared/graph-contract/README.md), not imported from
service.foundation.clouds, so a wrong row there fails these tests.

(Graph beta with chatInfo in the global cloud is covered in test_credentials_and_modes.)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_stack.processes import free_port
from local_stack.redis_server import RedisServer

from tests.support.emulator import EmulatorHandle, EmulatorSetup, start_emulator
from tests.support.factories import booking
from tests.support.problems import assert_problem
from tests.support.stack import Client, ServiceProcess, run_bounded

pytestmark = pytest.mark.e2e

# The contract's clouds table: Graph root of each GRAPH_CLOUD value.
GRAPH_ROOTS = {
    "global": "https://graph.microsoft.com",
    "usgov": "https://graph.microsoft.us",  # US Gov L4, GCC High
    "dod": "https://dod-graph.microsoft.us",  # US Gov L5
    "china": "https://microsoftgraph.chinacloudapi.cn",  # 21Vianet
}
CLOUDS = list(GRAPH_ROOTS)
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
START_FAILURE_TIMEOUT = 30.0
# "<METHOD> <path> -> <status> <n>ms request-id=<id>", the emulator's line per request.
REQUEST_LINE = re.compile(r" (?P<method>[A-Z]+) (?P<path>\S+) -> \S+ \d+ms request-id=(?P<id>\S+)$")

EmulatorFor = Callable[[str], EmulatorHandle]
ServiceFor = Callable[..., ServiceProcess]


@pytest.fixture(scope="module")
def clouds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clouds")


@pytest.fixture(scope="module")
def emulator_for(clouds_dir: Path, setup: EmulatorSetup) -> Iterator[EmulatorFor]:
    """emulator_for(cloud): that cloud's emulator, started on first use, stopped at the end.

    Every cloud gets the session's tenant, app and users, so that a mismatch test differs
    from a working one only in the cloud.
    """
    started: dict[str, EmulatorHandle] = {}

    def get(cloud: str) -> EmulatorHandle:
        if cloud not in started:
            started[cloud] = start_emulator(
                clouds_dir, setup.config, graph_audience=GRAPH_ROOTS[cloud]
            )
        return started[cloud]

    yield get
    for handle in started.values():
        handle.stop()


def cloud_env(
    setup: EmulatorSetup,
    redis_server: RedisServer,
    clients_file: Path,
    cloud: str,
    entra: EmulatorHandle,
    graph: EmulatorHandle,
    ca_bundle: str,
) -> dict[str, str]:
    """A service in GRAPH_CLOUD=cloud, getting tokens from `entra`, calling `graph`."""
    return {
        "GRAPH_CLOUD": cloud,
        "AZURE_TENANT_ID": setup.tenant_id,
        "AZURE_CLIENT_ID": setup.client_id,
        "AZURE_CLIENT_SECRET": setup.client_secret,
        "AZURE_AUTHORITY_HOST": entra.authority_host,
        "GRAPH_BASE_URL": graph.base_url,
        "GRAPH_CA_BUNDLE": ca_bundle,
        # As in conftest.service_env: a system bundle the service must not let win.
        "REQUESTS_CA_BUNDLE": SYSTEM_CA,
        "CURL_CA_BUNDLE": SYSTEM_CA,
        "REDIS_URL": redis_server.url,
        "CLIENTS_FILE": str(clients_file),
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def service_for(
    clouds_dir: Path,
    emulator_for: EmulatorFor,
    setup: EmulatorSetup,
    redis_server: RedisServer,
    clients_file: Path,
) -> Iterator[ServiceFor]:
    """service_for(cloud, entra=cloud, graph=entra): a one-worker service with
    GRAPH_CLOUD=cloud whose Entra and Graph are those clouds' emulators; started on first
    use, stopped at the end of the module."""
    started: dict[tuple[str, str, str], ServiceProcess] = {}

    def get(cloud: str, entra: str | None = None, graph: str | None = None) -> ServiceProcess:
        entra = entra or cloud
        graph = graph or entra
        key = (cloud, entra, graph)
        if key not in started:
            entra_emulator, graph_emulator = emulator_for(entra), emulator_for(graph)
            ca_bundle = entra_emulator.ca_bundle
            if graph != entra:  # two emulators, two CAs: trust both
                both = clouds_dir / f"ca-{entra}-{graph}.pem"
                both.write_text(
                    Path(entra_emulator.ca_bundle).read_text()
                    + Path(graph_emulator.ca_bundle).read_text()
                )
                ca_bundle = str(both)
            env = cloud_env(
                setup,
                redis_server,
                clients_file,
                cloud,
                entra_emulator,
                graph_emulator,
                ca_bundle,
            )
            process = ServiceProcess(clouds_dir / f"service-{'-'.join(key)}", env, workers=1)
            started[key] = process  # stopped at the end even if the start fails
            process.start()
        return started[key]

    yield get
    for process in started.values():
        process.stop()


def sent_request(emulator: EmulatorHandle, record: dict[str, Any]) -> str:
    """'<METHOD> <path>' of a Graph request the emulator recorded, from its request log."""
    for line in emulator.log().splitlines():
        found = REQUEST_LINE.search(line)
        if found and found["id"] == record["requestId"]:
            return f"{found['method']} {found['path']}"
    raise AssertionError(f"request {record['requestId']} not in the emulator log")


def token_scopes(emulator: EmulatorHandle, before: int = 0) -> list[tuple[str, int | str]]:
    """(scope, status) of the token requests the emulator saw, after the first `before`."""
    return [(t["scope"], t["status"]) for t in emulator.stats()["tokenRequests"][before:]]


def granted_scopes(emulator: EmulatorHandle) -> set[str]:
    return {scope for scope, status in token_scopes(emulator) if status == 200}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_meeting_is_created_with_the_clouds_token_scope_and_graph_path(
    cloud, emulator_for, service_for, callers, setup
):
    emulator = emulator_for(cloud)
    client = Client(service_for(cloud).url, callers["eu"].key)
    organizer = setup.user_with_policy

    created = client.post(booking(organizer, subject="Sovereign"))
    assert created.status_code == 201, created.text
    meeting = created.json()

    # The token came from this cloud's Entra, for this cloud's Graph.
    assert granted_scopes(emulator) == {f"{GRAPH_ROOTS[cloud]}/.default"}
    [sent] = emulator.requests_for(meeting["externalId"])
    assert (sent["operation"], sent["version"], sent["status"]) == ("createOrGet", "v1.0", 201)
    assert sent_request(emulator, sent) == (
        f"POST /v1.0/users/{organizer}/onlineMeetings/createOrGet"
    )
    assert emulator.meeting(meeting["meetingId"])["subject"] == "Sovereign"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_reschedule_and_cancel_reach_the_clouds_graph(
    cloud, emulator_for, service_for, callers, setup
):
    emulator = emulator_for(cloud)
    client = Client(service_for(cloud).url, callers["eu"].key)
    organizer = setup.user_with_policy
    body = booking(organizer, subject="Sovereign")
    created = client.post(body)
    assert created.status_code == 201, created.text
    meeting_id = created.json()["meetingId"]

    moved = client.patch(body["bookingId"], {"subject": "moved"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["subject"] == "moved"
    cancelled = client.delete(body["bookingId"])
    assert cancelled.status_code == 204, cancelled.text

    path = f"/v1.0/users/{organizer}/onlineMeetings/{meeting_id}"
    operations = emulator.operations_for(meeting_id)
    # The reschedule, the cancel's closing of the lobby (issue 12), then the delete.
    assert [(op["operation"], op["status"]) for op in operations] == [
        ("patchMeeting", 200),
        ("patchMeeting", 200),
        ("deleteMeeting", 204),
    ]
    assert [sent_request(emulator, op) for op in operations] == [
        f"PATCH {path}",
        f"PATCH {path}",
        f"DELETE {path}",
    ]
    assert emulator.meeting(meeting_id) is None  # deleted in this cloud's Graph
    assert granted_scopes(emulator) == {f"{GRAPH_ROOTS[cloud]}/.default"}


@pytest.mark.parametrize(
    ("cloud", "tenant_cloud"),
    [
        ("global", "usgov"),  # the default GRAPH_CLOUD for a GCC High tenant
        ("dod", "usgov"),  # same Entra host (login.microsoftonline.us), other Graph
    ],
)
def test_a_service_in_the_wrong_cloud_gets_no_token_and_makes_no_meeting(
    cloud, tenant_cloud, emulator_for, service_for, callers, setup
):
    emulator = emulator_for(tenant_cloud)
    client = Client(service_for(cloud, tenant_cloud).url, callers["eu"].key)
    body = booking(setup.user_with_policy)
    before = emulator.stats()

    problem = assert_problem(client.post(body), 502, "token-rejected")

    # The emulator answers invalid_scope (AADSTS70011); Entra may say invalid_resource
    # (AADSTS500011, resource not found in the tenant). Either must be a 502, not a retry.
    assert problem["tokenError"]["error"] in {"invalid_scope", "invalid_resource"}
    assert f"{GRAPH_ROOTS[cloud]}/.default" in problem["detail"]  # the scope it asked for
    assert token_scopes(emulator, len(before["tokenRequests"])) == [
        (f"{GRAPH_ROOTS[cloud]}/.default", 400)
    ]
    # Without a token nothing reached Graph, so no meeting exists anywhere.
    assert emulator.stats()["requests"] == before["requests"]
    assert client.get(body["bookingId"]).status_code == 404


def test_the_wrong_cloud_problem_tells_the_operator_to_check_graph_cloud(
    emulator_for, service_for, callers, setup
):
    client = Client(service_for("global", "usgov").url, callers["eu"].key)
    problem = assert_problem(client.post(booking(setup.user_with_policy)), 502, "token-rejected")
    assert "GRAPH_CLOUD" in problem["detail"]


def test_a_token_of_one_cloud_is_refused_by_another_clouds_graph(
    emulator_for, service_for, callers, setup
):
    """GRAPH_BASE_URL pointing at another cloud: Entra (usgov) issues a token, Graph
    (global) refuses it, the service retries once with a new token, then gives up."""
    graph = emulator_for("global")
    client = Client(service_for("usgov", "usgov", "global").url, callers["eu"].key)
    body = booking(setup.user_with_policy)

    problem = assert_problem(client.post(body), 502, "graph-unexpected-response")

    assert "GRAPH_CLOUD" in problem["detail"]
    assert problem["graphError"]["code"] == "InvalidAuthenticationToken"
    call = problem["graphError"]["clientRequestId"]
    sent = [r for r in graph.stats()["requests"] if r["clientRequestId"] == call]
    assert [(r["operation"], r["status"]) for r in sent] == [("createOrGet", 401)] * 2
    assert client.get(body["bookingId"]).status_code == 404


@pytest.mark.parametrize("cloud", ["usgov", "dod", "china"])
def test_beta_outside_the_global_cloud_stops_the_start(
    cloud, clouds_dir, setup, redis_server, clients_file
):
    """gunicorn exits at once, naming the problem; the cloud's own hosts are used (the
    check needs no network), so beta is the only thing wrong with this environment."""
    cleared = ("AZURE_", "GRAPH_", "GUNICORN_", "REDIS_URL", "CLIENTS_FILE", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
    env.update(
        {
            "GRAPH_CLOUD": cloud,
            "GRAPH_API_VERSION": "beta",
            "AZURE_TENANT_ID": setup.tenant_id,
            "AZURE_CLIENT_ID": setup.client_id,
            "AZURE_CLIENT_SECRET": setup.client_secret,
            "REDIS_URL": redis_server.url,
            "CLIENTS_FILE": str(clients_file),
            "GUNICORN_WORKERS": "1",
            "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
            "PROMETHEUS_MULTIPROC_DIR": str(clouds_dir / f"prometheus-beta-{cloud}"),
        }
    )
    status, output = run_bounded(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
        + ["service.wsgi:app"],
        env,
        START_FAILURE_TIMEOUT,
    )
    assert status != 0, output
    problems = {line.strip() for line in output.splitlines() if line.startswith("  - ")}
    assert len(problems) == 1, output  # beta is the only problem listed
    assert f"GRAPH_API_VERSION=beta is not available in the {cloud} cloud" in problems.pop()
    assert setup.client_secret not in output
