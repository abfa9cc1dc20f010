"""A client generated from the committed openapi.yaml drives a booking's whole life.

What a booking system's developer would do: run openapi-python-client on the document, import
the package, and call the service. Statuses, headers and bodies must arrive typed: meetings
as the generated Meeting model (UUIDs and datetimes parsed), every error as the generated
Problem model, never None or a raw dict.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from local_stack.clients import Caller

from tests.support.stack import REPO, ServiceProcess

pytestmark = pytest.mark.e2e

PACKAGE = "meeting_provisioning_client"
PROBLEM_TYPE = "urn:meeting-provisioning:problem:"
GENERATOR_CONFIG = {
    "package_name_override": PACKAGE,
    # Enums as Literal strings: a type checker sees the allowed roles and statuses.
    "literal_enums": True,
    # The document is served as application/yaml: read it as text.
    "content_type_overrides": {"application/yaml": "text/plain"},
    # No formatter run on the generated code (the test does not need it pretty).
    "post_hooks": [],
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The generated package and its modules, imported from a temporary directory."""
    directory = tmp_path_factory.mktemp("generated-client")
    config = directory / "config.json"
    config.write_text(json.dumps(GENERATOR_CONFIG), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(REPO / "openapi.yaml"),
            "--output-path",
            str(directory / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A warning means the generator dropped part of the document (an endpoint, a model).
    assert "Warning" not in output and "WARNING" not in output, output
    # The package is imported from its directory by location, without adding that to the
    # import path: its submodules are then found through the package's own __path__.
    package = directory / PACKAGE
    spec = importlib.util.spec_from_file_location(
        PACKAGE, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(sys.modules[PACKAGE])
        modules: dict[str, ModuleType] = {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in (
                "client",
                "models",
                "api.meetings.provision_meeting",
                "api.meetings.get_meeting",
                "api.meetings.reschedule_meeting",
                "api.meetings.cancel_meeting",
                "api.meetings.get_organizer_usage",
                "api.operations.get_readiness",
            )
        }
        yield SimpleNamespace(
            **{name.rsplit(".", 1)[-1]: module for name, module in modules.items()}
        )
    finally:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def api(generated: SimpleNamespace, service: ServiceProcess, callers: dict[str, Caller]) -> Any:
    client = generated.client.AuthenticatedClient(
        base_url=service.url,
        token=callers["eu"].key,
        raise_on_unexpected_status=True,
        httpx_args={"trust_env": False},
    )
    with client:
        yield client


def problem_of(generated: SimpleNamespace, response: Any, status: int, slug: str) -> Any:
    """The answer's generated Problem model, checked against its status and headers."""
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.parsed
    assert isinstance(problem, generated.models.Problem), problem
    assert problem.type_ == PROBLEM_TYPE + slug
    assert problem.status == status
    assert problem.title and problem.detail
    assert problem.request_id == response.headers["X-Request-ID"]
    # A closed model (additionalProperties: false) that lost nothing of the body.
    assert not hasattr(problem, "additional_properties")
    assert problem.to_dict() == json.loads(response.content)
    return problem


def meeting_of(generated: SimpleNamespace, response: Any, status: int) -> Any:
    assert response.status_code == status, response.content
    meeting = response.parsed
    assert isinstance(meeting, generated.models.Meeting), meeting
    assert isinstance(meeting.external_id, uuid.UUID)
    assert isinstance(meeting.organizer_id, uuid.UUID)
    assert isinstance(meeting.start_date_time, datetime)
    assert isinstance(meeting.end_date_time, datetime)
    assert isinstance(meeting.online_meeting, generated.models.MeetingOnlineMeeting)
    assert meeting.online_meeting.additional_properties["id"] == meeting.meeting_id
    assert not hasattr(meeting, "additional_properties")
    assert meeting.to_dict().keys() == json.loads(response.content).keys()
    return meeting


def test_a_generated_client_walks_a_booking_through_its_life(
    generated: SimpleNamespace, api: Any, organizer: str, emulator: Any
) -> None:
    models = generated.models
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    booking_id = f"generated-{uuid.uuid4()}"
    booking = models.Booking(
        booking_id=booking_id,
        organizer_id=uuid.UUID(organizer),
        subject="Design review",
        start_date_time=start,
        end_date_time=start + timedelta(hours=1),
        attendees=[models.Attendee(upn="ada@contoso.com", role="presenter")],
    )
    provision = generated.provision_meeting.sync_detailed

    created = provision(client=api, body=booking, x_request_id="generated-client-1")
    meeting = meeting_of(generated, created, 201)
    assert created.headers["X-Request-ID"] == "generated-client-1"
    assert created.headers["Location"] == f"/v1/meetings/{booking_id}"
    assert "Idempotent-Replayed" not in created.headers
    assert meeting.booking_id == booking_id
    assert meeting.organizer_id == uuid.UUID(organizer)
    assert meeting.start_date_time == start
    assert meeting.end_date_time == start + timedelta(hours=1)

    replayed = provision(client=api, body=booking)
    assert meeting_of(generated, replayed, 200).to_dict() == meeting.to_dict()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Location"] == f"/v1/meetings/{booking_id}"

    booking.subject = "Retro"
    conflict = problem_of(generated, provision(client=api, body=booking), 409, "booking-conflict")
    assert conflict.differing_fields == ["subject"]

    read = generated.get_meeting.sync_detailed(booking_id, client=api)
    assert meeting_of(generated, read, 200).to_dict() == meeting.to_dict()

    later = start + timedelta(days=1)
    change = models.MeetingChange(start_date_time=later, end_date_time=later + timedelta(hours=2))
    rescheduled = generated.reschedule_meeting.sync_detailed(booking_id, client=api, body=change)
    moved = meeting_of(generated, rescheduled, 200)
    assert moved.meeting_id == meeting.meeting_id
    assert moved.join_web_url == meeting.join_web_url
    assert (moved.start_date_time, moved.end_date_time) == (later, later + timedelta(hours=2))

    cancelled = generated.cancel_meeting.sync_detailed(booking_id, client=api)
    assert cancelled.status_code == 204
    assert cancelled.parsed is None
    assert cancelled.content == b""
    assert emulator.meeting(meeting.meeting_id) is None

    gone = generated.get_meeting.sync_detailed(booking_id, client=api)
    problem_of(generated, gone, 404, "booking-cancelled")


def test_a_generated_client_gets_every_error_as_a_typed_problem(
    generated: SimpleNamespace, api: Any, service: ServiceProcess, organizer: str
) -> None:
    models = generated.models
    usage = generated.get_organizer_usage.sync_detailed(uuid.UUID(organizer), client=api)
    assert usage.status_code == 200
    assert isinstance(usage.parsed, models.Usage)
    assert usage.parsed.organizer_id == uuid.UUID(organizer)
    assert usage.parsed.created == 0 and usage.parsed.limit > 0

    invalid = generated.get_meeting.sync_detailed("no spaces", client=api)
    problem = problem_of(generated, invalid, 400, "invalid-request")
    assert isinstance(problem.errors, models.ProblemErrors)
    assert "bookingId" in problem.errors.additional_properties

    unknown = generated.get_meeting.sync_detailed(f"never-{uuid.uuid4()}", client=api)
    problem_of(generated, unknown, 404, "booking-not-found")

    anonymous = generated.client.Client(base_url=service.url, httpx_args={"trust_env": False})
    with anonymous:
        refused = generated.get_meeting.sync_detailed("any", client=anonymous)
        # The platform's endpoints need no key.
        ready = generated.get_readiness.sync_detailed(client=anonymous)
    problem_of(generated, refused, 401, "unauthenticated")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert ready.status_code == 200
    assert isinstance(ready.parsed, models.Readiness)
    assert ready.parsed.status == "ready"
    assert set(ready.parsed.checks.additional_properties) == {"config", "redis", "graph"}


def test_the_generated_package_has_every_operation(generated: SimpleNamespace) -> None:
    package = Path(generated.client.__file__).parent
    found = {path.stem for path in (package / "api").rglob("*.py") if path.stem != "__init__"}
    assert found == {
        "provision_meeting",
        "get_meeting",
        "reschedule_meeting",
        "cancel_meeting",
        "get_organizer_usage",
        "get_liveness",
        "get_readiness",
        "get_metrics",
        "get_open_api_document",
    }
