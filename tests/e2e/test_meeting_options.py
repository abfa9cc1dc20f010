"""Meeting options against the real stack: set at POST with one PATCH after createOrGet,
a caller's defaultOptions and their overlay, the 409 on other options, PATCH of options,
`invited` (which needs Graph's Prefer header), and a cancel that closes the lobby first."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from local_stack.clients import Caller, write_clients_file

from service.domain.options import CLOSED_LOBBY
from tests.support.contract import validator
from tests.support.factories import booking
from tests.support.problems import assert_problem
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

PREFER = "include-unknown-enum-members"
GUEST_FRIENDLY = {
    "lobbyBypassSettings": {"scope": "everyone"},
    "allowedPresenters": "organizer",
    "allowRecording": False,
}
DEFAULTS = {
    "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
    "allowedPresenters": "organizer",
    "allowedLobbyAdmitters": "organizerAndCoOrganizers",
}


def graph_calls(emulator, organizer: str) -> dict[str, list[dict[str, Any]]]:
    """This organizer's Graph requests at the emulator, by operation."""
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in emulator.stats()["requests"]:
        if entry["userId"] == organizer.lower():
            found.setdefault(entry["operation"], []).append(entry)
    return found


def assert_valid_patches(patches: list[dict[str, Any]]) -> None:
    for patch in patches:
        validator("onlineMeeting", patch["version"]).validate(patch["body"])


def test_options_at_post_are_applied_by_one_patch_and_replay_without_graph(
    client, emulator, organizer
):
    body = booking(organizer, options=GUEST_FRIENDLY)

    created = client.post(body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["optionsPending"] is False
    assert answer["options"]["lobbyBypassSettings"] == {
        "scope": "everyone",
        "isDialInBypassEnabled": False,  # not asked for: Graph's value kept
    }
    assert answer["options"]["allowedPresenters"] == "organizer"
    assert answer["options"]["allowRecording"] is False
    assert answer["options"]["allowMeetingChat"] == "enabled"  # Teams' default
    meeting = emulator.meeting(answer["meetingId"])
    assert meeting["allowedPresenters"] == "organizer"
    assert meeting["lobbyBypassSettings"]["scope"] == "everyone"

    calls = graph_calls(emulator, organizer)
    assert len(calls["createOrGet"]) == 1
    patches = calls["patchMeeting"]
    assert len(patches) == 1
    assert_valid_patches(patches)
    # Only the members that differ from the meeting createOrGet returned.
    assert patches[0]["body"] == {
        "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": False},
        "allowedPresenters": "organizer",
        "allowRecording": False,
    }
    assert patches[0]["prefer"] is None

    replay = client.post(body)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (200, "true")
    assert replay.json()["options"] == answer["options"]
    got = client.get(body["bookingId"]).json()
    assert (got["options"], got["optionsPending"]) == (answer["options"], False)
    after = graph_calls(emulator, organizer)
    assert (len(after["createOrGet"]), len(after["patchMeeting"])) == (1, 1)


def test_options_the_meeting_already_has_need_no_patch(client, emulator, organizer):
    body = booking(organizer, options={"allowedPresenters": "everyone", "allowRecording": True})
    created = client.post(body)
    assert created.status_code == 201, created.text
    assert created.json()["options"]["allowedPresenters"] == "everyone"
    assert "patchMeeting" not in graph_calls(emulator, organizer)


def test_other_options_are_a_conflict_naming_the_members(client, emulator, organizer):
    body = booking(organizer, options=GUEST_FRIENDLY)
    assert client.post(body).status_code == 201

    other = {**body, "options": {**GUEST_FRIENDLY, "allowedPresenters": "everyone"}}
    problem = assert_problem(client.post(other), 409, "booking-conflict")
    assert problem["differingFields"] == ["options.allowedPresenters"]
    without = {k: v for k, v in body.items() if k != "options"}
    problem = assert_problem(client.post(without), 409, "booking-conflict")
    assert problem["differingFields"] == [
        "options.lobbyBypassSettings",
        "options.allowedPresenters",
        "options.allowRecording",
    ]
    plain = booking(organizer)
    assert client.post(plain).status_code == 201
    problem = assert_problem(
        client.post({**plain, "options": {"allowMeetingChat": "disabled"}}), 409, "booking-conflict"
    )
    assert problem["differingFields"] == ["options.allowMeetingChat"]
    assert len(graph_calls(emulator, organizer)["createOrGet"]) == 2


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({"allowedPresenters": "nobody"}, ["options.allowedPresenters"]),
        ({"lobbyBypassSettings": {"scope": "anyone"}}, ["options.lobbyBypassSettings.scope"]),
        ({"autoAdmittedUsers": "everyone"}, ["options.autoAdmittedUsers"]),
        (
            {"allowRecording": "no", "allowMeetingChat": 1},
            ["options.allowMeetingChat", "options.allowRecording"],
        ),
        (
            {"joinMeetingIdSettings": {"isPasscodeRequired": False}},
            ["options.joinMeetingIdSettings"],
        ),
    ],
)
def test_wrong_options_are_400_naming_each_member(client, emulator, organizer, options, fields):
    problem = assert_problem(
        client.post(booking(organizer, options=options)), 400, "invalid-request"
    )
    assert sorted(problem["errors"]) == fields
    if "options.joinMeetingIdSettings" in fields:
        assert "createOrGet" in problem["errors"]["options.joinMeetingIdSettings"]
    assert graph_calls(emulator, organizer) == {}


def test_invited_is_sent_with_the_prefer_header_and_reported_as_invited(
    client, emulator, organizer
):
    body = booking(organizer, options={"lobbyBypassSettings": {"scope": "invited"}})
    created = client.post(body)
    assert created.status_code == 201, created.text
    assert created.json()["options"]["lobbyBypassSettings"]["scope"] == "invited"
    assert emulator.meeting(created.json()["meetingId"])["lobbyBypassSettings"]["scope"] == (
        "invited"
    )
    calls = graph_calls(emulator, organizer)
    assert [c["prefer"] for c in calls["createOrGet"]] == [PREFER]
    assert [c["prefer"] for c in calls["patchMeeting"]] == [PREFER]
    assert_valid_patches(calls["patchMeeting"])
    assert client.get(body["bookingId"]).json()["options"]["lobbyBypassSettings"]["scope"] == (
        "invited"
    )


def test_patch_changes_options_and_later_posts_must_carry_them(client, emulator, organizer):
    body = booking(organizer, subject="Intake")
    created = client.post(body)
    assert created.status_code == 201
    assert created.json()["options"]["allowedPresenters"] == "everyone"

    changed = client.patch(
        body["bookingId"],
        {"options": {"allowedPresenters": "organizer", "allowMeetingChat": "limited"}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["options"]["allowedPresenters"] == "organizer"
    assert changed.json()["options"]["allowMeetingChat"] == "limited"
    assert changed.json()["meetingId"] == created.json()["meetingId"]
    patches = graph_calls(emulator, organizer)["patchMeeting"]
    assert [p["body"] for p in patches] == [
        {"allowedPresenters": "organizer", "allowMeetingChat": "limited"}
    ]
    assert_valid_patches(patches)

    problem = assert_problem(client.post(body), 409, "booking-conflict")
    assert problem["differingFields"] == ["options.allowedPresenters", "options.allowMeetingChat"]
    now = {**body, "options": {"allowMeetingChat": "limited", "allowedPresenters": "organizer"}}
    replay = client.post(now)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (200, "true")

    problem = assert_problem(
        client.patch(body["bookingId"], {"options": {"allowedPresenters": "anyone"}}),
        400,
        "invalid-request",
    )
    assert list(problem["errors"]) == ["options.allowedPresenters"]


def test_a_reschedule_sends_prefer_only_with_options_that_need_it(client, emulator, organizer):
    body = booking(organizer, subject="Intake")
    assert client.post(body).status_code == 201
    moved = client.patch(body["bookingId"], {"subject": "Moved"})
    assert moved.status_code == 200, moved.text
    invited = client.patch(
        body["bookingId"], {"options": {"lobbyBypassSettings": {"scope": "invited"}}}
    )
    assert invited.status_code == 200, invited.text
    assert invited.json()["options"]["lobbyBypassSettings"]["scope"] == "invited"
    patches = graph_calls(emulator, organizer)["patchMeeting"]
    assert [p["body"] for p in patches][0] == {"subject": "Moved"}
    assert patches[1]["body"]["lobbyBypassSettings"]["scope"] == "invited"
    assert [p["prefer"] for p in patches] == [None, PREFER]
    assert_valid_patches(patches)


def test_a_cancel_closes_the_lobby_before_deleting(client, emulator, organizer):
    body = booking(organizer, options=GUEST_FRIENDLY)
    created = client.post(body)
    assert created.status_code == 201
    meeting_id = created.json()["meetingId"]

    assert client.delete(body["bookingId"]).status_code == 204
    operations = [(r["operation"], r["status"]) for r in emulator.operations_for(meeting_id)]
    assert operations[-2:] == [("patchMeeting", 200), ("deleteMeeting", 204)]
    closing = emulator.operations_for(meeting_id)[-2]
    assert closing["body"] == CLOSED_LOBBY
    assert closing["prefer"] is None  # no value in it needs the header
    assert closing["body"]["lobbyBypassSettings"]["scope"] == "organizer"
    assert closing["body"]["allowedPresenters"] == "organizer"
    assert_valid_patches([closing])
    assert emulator.meeting(meeting_id) is None


@pytest.fixture(scope="module")
def defaults_caller() -> Caller:
    return Caller("clinic", secrets.token_urlsafe(32), ["*"], default_options=DEFAULTS)


@pytest.fixture(scope="module")
def defaults_service(
    tmp_path_factory: pytest.TempPathFactory, service_env, defaults_caller: Caller
):
    """A service whose one caller has defaultOptions, and that does not close the lobby on
    cancel (CANCEL_CLOSES_LOBBY=false)."""
    root: Path = tmp_path_factory.mktemp("options-service")
    clients = write_clients_file(root / "clients.json", [defaults_caller])
    assert "defaultOptions" in json.loads(clients.read_text())["clients"][0]
    process = ServiceProcess(
        root / "service", service_env(CLIENTS_FILE=str(clients), CANCEL_CLOSES_LOBBY="false")
    ).start()
    yield process
    process.stop()


@pytest.fixture
def clinic(defaults_service: ServiceProcess, defaults_caller: Caller) -> Client:
    return Client(defaults_service.url, defaults_caller.key)


def test_a_callers_default_options_apply_and_a_request_overlays_them(clinic, emulator, organizer):
    plain = booking(organizer)
    created = clinic.post(plain)
    assert created.status_code == 201, created.text
    options = created.json()["options"]
    assert options["lobbyBypassSettings"] == {"scope": "everyone", "isDialInBypassEnabled": True}
    assert options["allowedPresenters"] == "organizer"
    assert options["allowedLobbyAdmitters"] == "organizerAndCoOrganizers"

    overlaid = booking(
        organizer,
        options={"lobbyBypassSettings": {"scope": "organization"}, "allowRecording": False},
    )
    answer = clinic.post(overlaid)
    assert answer.status_code == 201, answer.text
    options = answer.json()["options"]
    # The request's lobbyBypassSettings replaced the default's whole object: its dial-in
    # member keeps Graph's value (false), not the default's true.
    assert options["lobbyBypassSettings"] == {
        "scope": "organization",
        "isDialInBypassEnabled": False,
    }
    assert options["allowedPresenters"] == "organizer"  # from the defaults
    assert options["allowRecording"] is False
    patches = graph_calls(emulator, organizer)["patchMeeting"]
    assert len(patches) == 2
    assert_valid_patches(patches)
    assert patches[1]["body"] == {
        "allowedPresenters": "organizer",
        "allowedLobbyAdmitters": "organizerAndCoOrganizers",
        "allowRecording": False,
    }

    # The same request again replays; the defaults spelt out are the same effective options.
    assert clinic.post(plain).headers.get("Idempotent-Replayed") == "true"
    assert clinic.post({**plain, "options": DEFAULTS}).headers.get("Idempotent-Replayed") == "true"
    problem = assert_problem(
        clinic.post({**plain, "options": {"allowedPresenters": "everyone"}}),
        409,
        "booking-conflict",
    )
    assert problem["differingFields"] == ["options.allowedPresenters"]


def test_with_cancel_closes_lobby_false_a_cancel_only_deletes(clinic, emulator, organizer):
    body = booking(organizer)
    created = clinic.post(body)
    meeting_id = created.json()["meetingId"]
    assert clinic.delete(body["bookingId"]).status_code == 204
    operations = [r["operation"] for r in emulator.operations_for(meeting_id)]
    assert operations == ["patchMeeting", "deleteMeeting"]  # the defaults' PATCH, then DELETE
