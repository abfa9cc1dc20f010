"""What the platform sees: probes, metrics, the API document, logs, and start-up errors."""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from local_stack.processes import free_port, wait_until
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support.factories import booking
from tests.support.metrics import scrape, value
from tests.support.stack import REPO, Client, run_bounded

pytestmark = pytest.mark.e2e

CONFIG_FAILURE_TIMEOUT = 30.0


# --- probes -----------------------------------------------------------------------------


def test_healthz_is_ok(service):
    answer = requests.get(f"{service.url}/healthz", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_readyz_is_ready_when_redis_answers(service):
    answer = requests.get(f"{service.url}/readyz", timeout=5)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert body["checks"]["config"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["graph"]["status"] == "ok"


def test_healthz_does_not_touch_redis_and_readyz_reports_it_degraded(start_service):
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    variant = start_service(REDIS_URL=nothing_listens)

    for _ in range(4):  # several times, so both workers answer
        alive = requests.get(f"{variant.url}/healthz", timeout=5)
        assert alive.status_code == 200
        assert alive.json() == {"status": "ok"}

    # Still ready (200): a Redis outage hits every replica alike, and POST keeps working.
    ready = requests.get(f"{variant.url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "failing"
    assert body["checks"]["config"]["status"] == "ok"
    assert body["checks"]["graph"]["status"] == "ok"


# --- metrics ----------------------------------------------------------------------------


WATCHED = {
    "posts_201": (
        "mps_http_requests_total",
        {"route": "/v1/meetings", "method": "POST", "status": "201"},
    ),
    "posts_200": (
        "mps_http_requests_total",
        {"route": "/v1/meetings", "method": "POST", "status": "200"},
    ),
    "created": ("mps_meetings_total", {"outcome": "created"}),
    "replayed": ("mps_meetings_total", {"outcome": "replayed"}),
    "graph_201": ("mps_graph_calls_total", {"operation": "createOrGet", "status": "201"}),
}


def watched(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    return {key: value(samples, name, **labels) for key, (name, labels) in WATCHED.items()}


def per_worker(process) -> dict[str, float]:
    """POST 201s as each worker's own metrics file counts them: {file stem: value}."""
    directory = Path(
        process.env.get("PROMETHEUS_MULTIPROC_DIR") or process.directory / "prometheus"
    )
    name, labels = WATCHED["posts_201"]
    counts: dict[str, float] = {}
    for path in sorted(directory.glob("counter_*.db")):
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    counts[path.stem] = counts.get(path.stem, 0.0) + sample.value
    return counts


def provision_and_replay(url: str, key: str, organizer: str, new: int, replayed: int) -> None:
    """`new` new bookings, then `replayed` of them again; concurrently, a connection each."""
    bodies = [booking(organizer) for _ in range(new)]

    def post(body: dict[str, Any]) -> requests.Response:
        return Client(url, key).post(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=new) as pool:
        created = list(pool.map(post, bodies))
        replays = list(pool.map(post, bodies[:replayed]))
    assert [a.status_code for a in created] == [201] * new, [a.text for a in created]
    assert [a.status_code for a in replays] == [200] * replayed, [a.text for a in replays]
    assert all(a.headers.get("Idempotent-Replayed") == "true" for a in replays)


def assert_metrics_count(process, before: dict[str, float], new: int, replayed: int) -> None:
    expected = {
        "posts_201": new,
        "posts_200": replayed,
        "created": new,
        "replayed": replayed,
        "graph_201": new,
    }
    for _ in range(6):  # whichever worker answers the scrape reports the sum over all
        after = watched(scrape(process.url))
        assert {key: after[key] - before[key] for key in WATCHED} == expected


def test_alerted_series_exist_at_zero_from_the_start(start_service):
    """increase() cannot see a counter's first event if the series only appears with it."""
    samples = scrape(start_service(workers=1).url)
    declared = [labels for labels, _ in samples.get("mps_token_failures_total", [])]
    assert {"reason": "rejected"} in declared  # value() alone would read a missing one as 0
    assert value(samples, "mps_token_failures_total", reason="rejected") == 0
    assert value(samples, "mps_graph_calls_total", operation="createOrGet", status="403") == 0
    assert value(samples, "mps_redis_up") == 1  # known before any request used Redis


def test_metrics_add_up_across_both_workers(service, client, organizer):
    before = watched(scrape(service.url))
    before_per_worker = per_worker(service)

    provision_and_replay(service.url, client.key, organizer, new=10, replayed=4)

    assert_metrics_count(service, before, new=10, replayed=4)
    # ... and the sum is made of the workers' own counts.
    after_per_worker = per_worker(service)
    deltas = {pid: n - before_per_worker.get(pid, 0.0) for pid, n in after_per_worker.items()}
    assert sum(deltas.values()) == 10, deltas

    tokens = scrape(service.url).get("mps_token_acquisitions_total", [])
    assert tokens, "mps_token_acquisitions_total is not exported"
    assert sum(v for _, v in tokens) >= 1
    assert {labels["source"] for labels, _ in tokens} <= {"identity_provider", "cache"}


def test_metrics_sum_requests_that_both_workers_served(start_service, callers, emulator, organizer):
    # gthread workers may leave all requests to one of them. Sync workers (one thread)
    # cannot: while one waits for a slow Graph, the other must accept the next request.
    variant = start_service(GUNICORN_THREADS="1")
    emulator.add_fault(target="createOrGet", latencyMs=300, organizerId=organizer, count=6)
    before = watched(scrape(variant.url))

    provision_and_replay(variant.url, callers["eu"].key, organizer, new=6, replayed=3)

    served = {pid: n for pid, n in per_worker(variant).items() if n}
    assert len(served) == 2, f"expected both workers to serve POSTs: {served}"
    assert sum(served.values()) == 6
    assert_metrics_count(variant, before, new=6, replayed=3)


# --- the API document -------------------------------------------------------------------


def test_openapi_document_is_served_as_committed(service):
    answer = requests.get(f"{service.url}/openapi.yaml", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/yaml")
    document = yaml.safe_load(answer.text)
    assert document["openapi"] == "3.1.0"
    assert "/v1/meetings" in document["paths"]
    assert answer.content == (REPO / "openapi.yaml").read_bytes()


def test_committed_openapi_document_is_up_to_date():
    from service.openapi import generate

    committed = (REPO / "openapi.yaml").read_text(encoding="utf-8")
    assert committed == generate(), "openapi.yaml is stale: run `make openapi`"


# --- logs -------------------------------------------------------------------------------


def json_lines(log: str) -> list[dict[str, Any]]:
    """The app's log lines (gunicorn's own lines are plain text); each must be one object."""
    records = []
    for line in log.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records


def test_app_log_lines_are_json_with_the_request_context(service, client, emulator, organizer):
    request_id = f"ops-{uuid.uuid4()}"
    body = booking(organizer)
    answer = client.post(body, headers={"X-Request-ID": request_id})
    assert answer.status_code == 201, answer.text

    def mine() -> list[dict[str, Any]]:
        return [r for r in json_lines(service.log()) if r.get("requestId") == request_id]

    def access_line_written() -> bool:
        return any(r.get("logger") == "service.access" for r in mine())

    wait_until(access_line_written, 10, "the access log line", service.log)

    records = json_lines(service.log())
    assert records
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record

    (access,) = [r for r in mine() if r["logger"] == "service.access"]
    assert access["callerId"] == "booking-eu"
    assert access["bookingId"] == body["bookingId"]
    assert access["status"] == 201
    assert access["method"] == "POST"
    assert isinstance(access["latencyMs"], int | float) and access["latencyMs"] >= 0

    (graph,) = [r for r in mine() if "graphRequestId" in r]
    assert graph["bookingId"] == body["bookingId"]
    (sent,) = emulator.requests_for(answer.json()["externalId"])
    assert graph["clientRequestId"] == sent["clientRequestId"]
    assert graph["graphRequestId"] == sent["requestId"]


def secrets_found(log: str, secret_values: dict[str, str]) -> list[str]:
    hits = [name for name, secret in secret_values.items() if secret and secret in log]
    if "eyJ" in log:
        hits.append("a JWT (eyJ…)")
    return hits


def test_logs_never_contain_credentials_keys_or_tokens(
    service, client, callers, setup, organizer, start_service
):
    wrong_key = secrets.token_urlsafe(32)
    body = booking(organizer)
    assert client.post(body).status_code == 201
    assert client.get(body["bookingId"]).status_code == 200
    assert Client(service.url, wrong_key).post(body).status_code == 401

    known = {
        "client secret": setup.client_secret,
        "wrong API key": wrong_key,
        **{f"API key of {c.id}": c.key for c in callers.values()},
    }
    key_lines = [
        line.strip()
        for line in setup.private_key_pem.splitlines()
        if line.strip() and not line.startswith("-----")
    ]
    assert key_lines
    known.update({f"private key line {i}": line for i, line in enumerate(key_lines)})

    certificate = start_service(credential="certificate")
    federated = start_service(credential="federated")
    token_file = Path(federated.env["AZURE_FEDERATED_TOKEN_FILE"])
    known["federated token"] = token_file.read_text(encoding="utf-8").strip()
    for variant in (certificate, federated):
        answer = Client(variant.url, client.key).post(booking(organizer))
        assert answer.status_code == 201, answer.text

    for name, process in (
        ("session service", service),
        ("certificate variant", certificate),
        ("federated variant", federated),
    ):
        log = process.log()
        assert "graph createOrGet answered" in log  # the log is the one the calls wrote
        hits = secrets_found(log, known)
        assert not hits, f"the {name}'s log contains {hits}"


# --- configuration failure at start -----------------------------------------------------


def broken_environment(secret: str) -> dict[str, str]:
    cleared = ("AZURE_", "GRAPH_", "GUNICORN_", "REDIS_URL", "CLIENTS_FILE", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
    env.update(
        {
            "GRAPH_CLOUD": "mars",
            "AZURE_CLIENT_SECRET": secret,
            "GUNICORN_WORKERS": "1",
            "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        }
    )
    return env


PROBLEMS = ("AZURE_TENANT_ID is required", "CLIENTS_FILE is required", "GRAPH_CLOUD='mars'")


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
            + ["service.wsgi:app"],
            id="gunicorn",
        ),
        pytest.param([sys.executable, "-c", "import service.wsgi"], id="import"),
    ],
)
def test_invalid_configuration_stops_the_start_listing_every_problem(command):
    secret = secrets.token_urlsafe(24)
    status, output = run_bounded(command, broken_environment(secret), CONFIG_FAILURE_TIMEOUT)
    assert status != 0, output
    for problem in PROBLEMS:
        assert problem in output, f"{problem!r} missing from:\n{output}"
    assert secret not in output
