"""Meeting options at the emulated Graph: every option starts with Teams' default, a PATCH
applies them with Graph's rules, and an evolvable enum's values after
`unknownFutureValue` (lobby scope `invited`) need `Prefer: include-unknown-enum-members`,
both to be set and to be seen."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.emulator import EmulatorHandle, EmulatorSetup
from tests.support.graph_client import GraphClient

pytestmark = pytest.mark.emulator

PREFER = {"Prefer": "include-unknown-enum-members"}
DEFAULTS = {
    "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
    "allowedPresenters": "everyone",
    "allowedLobbyAdmitters": "organizerAndCoOrganizersAndPresenters",
    "allowMeetingChat": "enabled",
    "allowTeamworkReactions": True,
    "allowAttendeeToEnableCamera": True,
    "allowAttendeeToEnableMic": True,
    "isEntryExitAnnounced": True,
    "recordAutomatically": False,
    "allowRecording": True,
    "allowTranscription": True,
}


def create(graph: GraphClient, setup: EmulatorSetup, version: str = "v1.0") -> dict[str, Any]:
    response = graph.create_or_get(
        setup.user_with_policy, {"externalId": str(uuid.uuid4())}, version
    )
    assert response.status_code == 201
    meeting: dict[str, Any] = response.json()
    return meeting


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_a_new_meeting_has_every_option_at_teams_default(graph, setup, version):
    meeting = create(graph, setup, version)
    assert {name: meeting[name] for name in DEFAULTS} == DEFAULTS


def test_a_patch_applies_options_and_keeps_the_others(graph, setup, emulator):
    meeting = create(graph, setup)
    change = {
        "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
        "allowedPresenters": "organizer",
        "allowMeetingChat": "limited",
        "allowRecording": False,
    }
    patched = graph.update_meeting(setup.user_with_policy, meeting["id"], change)
    assert patched.status_code == 200
    assert {name: patched.json()[name] for name in DEFAULTS} == {**DEFAULTS, **change}
    assert emulator.meeting(meeting["id"])["allowedPresenters"] == "organizer"
    # createOrGet returns the patched meeting: its options are not reset.
    again = graph.create_or_get(setup.user_with_policy, {"externalId": meeting["externalId"]})
    assert (again.status_code, again.json()["allowRecording"]) == (200, False)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"allowedPresenters": "nobody"}, "allowedPresenters"),
        ({"lobbyBypassSettings": {"scope": "anyone"}}, "scope"),
        ({"allowedPresenters": "unknownFutureValue"}, "cannot be set"),
        ({"joinMeetingIdSettings": {"isPasscodeRequired": False}}, "joinMeetingIdSettings"),
    ],
)
def test_a_patch_of_a_wrong_or_read_only_option_is_refused(
    graph, setup, emulator, change, complaint
):
    meeting = create(graph, setup)
    refused = graph.update_meeting(
        setup.user_with_policy, meeting["id"], change, valid_request=False
    )
    assert refused.status_code == 400
    assert complaint in refused.json()["error"]["message"]
    assert emulator.meeting(meeting["id"]) == {
        k: v for k, v in meeting.items() if k != "@odata.context"
    }


def test_invited_needs_the_prefer_header_to_be_set(graph, setup, emulator):
    meeting = create(graph, setup)
    invited = {"lobbyBypassSettings": {"scope": "invited", "isDialInBypassEnabled": False}}

    refused = graph.update_meeting(setup.user_with_policy, meeting["id"], invited)
    assert refused.status_code == 400
    assert "include-unknown-enum-members" in refused.json()["error"]["message"]
    assert emulator.meeting(meeting["id"])["lobbyBypassSettings"]["scope"] == "organization"

    accepted = graph.update_meeting(setup.user_with_policy, meeting["id"], invited, headers=PREFER)
    assert accepted.status_code == 200
    assert accepted.json()["lobbyBypassSettings"]["scope"] == "invited"
    assert emulator.meeting(meeting["id"])["lobbyBypassSettings"]["scope"] == "invited"
    recorded = [r for r in emulator.operations_for(meeting["id"]) if r["status"] == 200]
    assert recorded[-1]["prefer"] == "include-unknown-enum-members"


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_invited_reads_as_unknown_future_value_without_the_prefer_header(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, version: str
):
    meeting = create(graph, setup, version)
    graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {"lobbyBypassSettings": {"scope": "organizationExcludingGuests"}},
        version,
        headers=PREFER,
    )
    user = setup.user_with_policy

    plain = graph.get_meeting(user, meeting["id"], version).json()
    assert plain["lobbyBypassSettings"]["scope"] == "unknownFutureValue"
    preferred = graph.get_meeting(user, meeting["id"], version, headers=PREFER).json()
    assert preferred["lobbyBypassSettings"]["scope"] == "organizationExcludingGuests"
    again = {"externalId": meeting["externalId"]}
    assert (
        graph.create_or_get(user, again, version).json()["lobbyBypassSettings"]["scope"]
        == "unknownFutureValue"
    )
    assert (
        graph.create_or_get(user, again, version, headers=PREFER).json()["lobbyBypassSettings"][
            "scope"
        ]
        == "organizationExcludingGuests"
    )
    # Another PATCH without the header leaves the stored value as it is, and says so.
    other = graph.update_meeting(user, meeting["id"], {"allowRecording": False}, version)
    assert other.json()["lobbyBypassSettings"]["scope"] == "unknownFutureValue"
    stored = emulator.meeting(meeting["id"])
    assert stored["lobbyBypassSettings"]["scope"] == "organizationExcludingGuests"
