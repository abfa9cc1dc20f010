"""Meeting options: the checked copy of the contract's enums, the request rules, the
overlay of a caller's defaults, the fingerprint and the PATCH that applies them, and the
stored record's options-pending state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from marshmallow import ValidationError

from service.domain import options
from service.domain.booking import BookingRequest, MeetingChange
from service.domain.callers import CallerRegistryError, load_callers
from service.domain.fingerprint import Fingerprint
from service.domain.record import FORMAT_VERSION, BookingRecord
from service.web.problems import flatten_messages
from service.web.schemas import BookingSchema, MeetingChangeSchema
from tests.support.contract import document

pytestmark = pytest.mark.unit

ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
KEY_SHA = "a" * 64


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_the_enums_are_the_contracts(version):
    schemas = document(version)["components"]["schemas"]
    for name, values in options.ENUMS.items():
        assert tuple(schemas[f"microsoft.graph.{name}"]["enum"]) == values, name


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_every_option_is_an_updatable_member_of_its_contract_type(version):
    contract = document(version)
    schemas = contract["components"]["schemas"]
    base = schemas["microsoft.graph.onlineMeetingBase"]["allOf"][1]["properties"]
    patch = contract["paths"]["/users/{user-id}/onlineMeetings/{onlineMeeting-id}"]["patch"]
    updatable = set(patch["x-ms-updatable-properties-v1.0-docs"])
    for member, kind in options.OPTION_TYPES.items():
        assert member in base and member in updatable, member
        schema = base[member]
        if kind == options.BOOLEAN:
            assert schema["type"] == ["boolean", "null"], member
        elif kind == options.LOBBY_BYPASS:
            assert schema["anyOf"][0]["$ref"].endswith("lobbyBypassSettings")
        else:
            assert schema["anyOf"][0]["$ref"].endswith(f"microsoft.graph.{kind}"), member
    lobby = schemas["microsoft.graph.lobbyBypassSettings"]["properties"]
    assert set(options.LOBBY_BYPASS_MEMBERS) <= set(lobby)
    assert lobby["scope"]["anyOf"][0]["$ref"].endswith("lobbyBypassScope")
    assert "joinMeetingIdSettings" not in updatable


def test_valid_options_come_back_in_normal_order():
    parsed = options.parse(
        {
            "allowRecording": False,
            "lobbyBypassSettings": {"scope": "invited"},
            "allowedPresenters": "organizer",
        }
    )
    assert list(parsed) == ["lobbyBypassSettings", "allowedPresenters", "allowRecording"]


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({"allowedPresenters": "nobody"}, {"allowedPresenters"}),
        ({"allowedPresenters": "unknownFutureValue"}, {"allowedPresenters"}),
        ({"allowRecording": "yes"}, {"allowRecording"}),
        ({"allowRecording": None}, {"allowRecording"}),
        ({"autoAdmittedUsers": "everyone"}, {"autoAdmittedUsers"}),
        ({"lobbyBypassSettings": {"scope": "anyone"}}, {"lobbyBypassSettings.scope"}),
        ({"lobbyBypassSettings": {"colour": 1}}, {"lobbyBypassSettings.colour"}),
        ({"lobbyBypassSettings": {}}, {"lobbyBypassSettings"}),
        ({"lobbyBypassSettings": "everyone"}, {"lobbyBypassSettings"}),
        ({"joinMeetingIdSettings": {"isPasscodeRequired": False}}, {"joinMeetingIdSettings"}),
        ({"allowMeetingChat": "on", "subject": "x"}, {"allowMeetingChat", "subject"}),
    ],
)
def test_wrong_options_name_each_member(given, errors):
    with pytest.raises(options.OptionsError) as raised:
        options.parse(given)
    assert set(raised.value.errors) == errors


def test_join_meeting_id_settings_is_explained():
    with pytest.raises(options.OptionsError) as raised:
        options.parse({"joinMeetingIdSettings": {"isPasscodeRequired": False}})
    assert "createOrGet" in raised.value.errors["joinMeetingIdSettings"]


def booking_body(**fields):
    return {"bookingId": "b-1", "organizerId": ORGANIZER, **fields}


def test_the_schema_reports_options_members_as_dotted_paths():
    with pytest.raises(ValidationError) as raised:
        BookingSchema().load(
            booking_body(
                options={"allowedPresenters": "nobody", "lobbyBypassSettings": {"scope": 1}}
            )
        )
    assert set(flatten_messages(raised.value.messages)) == {
        "options.allowedPresenters",
        "options.lobbyBypassSettings.scope",
    }
    with pytest.raises(ValidationError) as raised:
        MeetingChangeSchema().load({"options": {"joinMeetingIdSettings": {}}})
    assert set(flatten_messages(raised.value.messages)) == {"options.joinMeetingIdSettings"}
    with pytest.raises(ValidationError) as raised:
        BookingSchema().load(booking_body(options=["everyone"]))
    assert set(flatten_messages(raised.value.messages)) == {"options"}


def test_defaults_are_overlaid_member_by_member():
    defaults = {
        "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
        "allowedPresenters": "organizer",
    }
    request: BookingRequest = BookingSchema().load(
        booking_body(options={"lobbyBypassSettings": {"scope": "invited"}, "allowRecording": False})
    )
    effective = request.with_default_options(defaults).options
    assert effective == {
        "lobbyBypassSettings": {"scope": "invited"},  # replaced whole
        "allowedPresenters": "organizer",
        "allowRecording": False,
    }


def test_options_are_part_of_the_fingerprint_and_a_conflict_names_the_member():
    plain = BookingRequest.create(booking_id="b", organizer_id=ORGANIZER)
    with_options = BookingRequest.create(
        booking_id="b", organizer_id=ORGANIZER, options={"allowedPresenters": "organizer"}
    )
    assert "options" not in Fingerprint.of(plain).to_stored()  # as in records stored before options
    assert Fingerprint.of(plain).differing_fields(Fingerprint.of(plain)) == []
    assert Fingerprint.of(plain).differing_fields(Fingerprint.of(with_options)) == [
        "options.allowedPresenters"
    ]
    other = with_options.with_default_options({"allowMeetingChat": "disabled"})
    assert Fingerprint.of(with_options).differing_fields(Fingerprint.of(other)) == [
        "options.allowMeetingChat"
    ]
    # A fingerprint stored before options existed (no member at all, or null) replays.
    old = {key: value for key, value in Fingerprint.of(plain).to_stored().items()}
    stored = Fingerprint.from_stored({**old, "options": None})
    assert stored.differing_fields(Fingerprint.of(plain)) == []
    assert Fingerprint.from_stored(old).differing_fields(Fingerprint.of(plain)) == []


def test_a_change_overlays_the_stored_options():
    stored = Fingerprint.of(
        BookingRequest.create(
            booking_id="b", organizer_id=ORGANIZER, options={"allowedPresenters": "organizer"}
        )
    )
    change = MeetingChange.create(options={"allowRecording": False})
    assert stored.changed_by(change).to_stored()["options"] == {
        "allowedPresenters": "organizer",
        "allowRecording": False,
    }


def test_the_patch_sends_only_what_differs_and_keeps_the_lobbys_other_member():
    meeting = {
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": True},
        "allowedPresenters": "everyone",
        "allowRecording": True,
    }
    wanted = {
        "lobbyBypassSettings": {"scope": "everyone"},
        "allowedPresenters": "everyone",
        "allowRecording": False,
    }
    assert options.patch_body(meeting, wanted) == {
        "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
        "allowRecording": False,
    }
    assert options.patch_body({**meeting, "allowRecording": False, "lobbyBypassSettings": {
        "scope": "everyone", "isDialInBypassEnabled": True}}, wanted) == {}  # fmt: skip


def test_prefer_is_needed_only_for_values_after_unknown_future_value():
    assert options.needs_prefer({"lobbyBypassSettings": {"scope": "invited"}})
    assert options.needs_prefer({"lobbyBypassSettings": {"scope": "organizationExcludingGuests"}})
    assert not options.needs_prefer({"lobbyBypassSettings": {"scope": "everyone"}})
    assert not options.needs_prefer({"allowedPresenters": "organizer", "allowRecording": True})


def test_the_prefer_header_is_sent_only_with_options_that_need_it():
    assert options.prefer_header({"lobbyBypassSettings": {"scope": "invited"}}) == (
        "include-unknown-enum-members"
    )
    assert options.prefer_header({"allowedPresenters": "organizer"}) is None
    assert options.prefer_header({}) is None
    assert options.prefer_header(options.CLOSED_LOBBY) is None  # the cancel's PATCH


def record(**overrides) -> BookingRecord:
    fields = {
        "booking_id": "b",
        "generation": 0,
        "external_id": "e",
        "organizer_id": ORGANIZER,
        "request": {"organizerId": ORGANIZER},
        "meeting": {"id": "m", "allowedPresenters": "everyone"},
        "graph_request_id": None,
    }
    return BookingRecord.provisioned(**{**fields, **overrides})


def test_a_record_without_pending_options_says_nothing_of_them_and_old_records_load():
    plain = record()
    assert not plain.options_pending
    assert json.loads(plain.to_json())["formatVersion"] == FORMAT_VERSION
    assert "optionsPending" not in json.loads(plain.to_json())
    old = json.dumps(
        {
            "bookingId": "b",
            "externalId": "e",
            "organizerId": ORGANIZER,
            "request": {"organizerId": ORGANIZER},
            "meeting": {"id": "m"},
        }
    )
    loaded = BookingRecord.from_json(old)
    assert not loaded.options_pending and loaded.effective_options == {}
    assert loaded.view()["optionsPending"] is False


def test_a_record_with_pending_options_round_trips():
    pending = record(
        request={"organizerId": ORGANIZER, "options": {"allowedPresenters": "organizer"}}
    )
    assert pending.options_pending
    document_ = json.loads(pending.to_json())
    assert (document_["formatVersion"], document_["optionsPending"]) == (FORMAT_VERSION, True)
    loaded = BookingRecord.from_json(pending.to_json())
    assert loaded == pending
    assert loaded.view()["optionsPending"] is True
    assert loaded.view()["options"] == {"allowedPresenters": "everyone"}
    applied = loaded.options_applied({"id": "m", "allowedPresenters": "organizer"}, "r")
    assert not BookingRecord.from_json(applied.to_json()).options_pending
    assert applied.view()["options"] == {"allowedPresenters": "organizer"}


def test_a_record_already_carrying_the_options_is_not_pending():
    done = record(request={"organizerId": ORGANIZER, "options": {"allowedPresenters": "everyone"}})
    assert not done.options_pending


def write_clients(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "clients.json"
    path.write_text(
        json.dumps({"clients": [{"id": "c", "keySha256": KEY_SHA, "organizers": ["*"], **entry}]})
    )
    return path


def test_a_caller_may_carry_default_options(tmp_path):
    callers = load_callers(
        write_clients(tmp_path, {"defaultOptions": {"lobbyBypassSettings": {"scope": "everyone"}}})
    )
    assert callers["c"].default_options == {"lobbyBypassSettings": {"scope": "everyone"}}
    assert load_callers(write_clients(tmp_path, {}))["c"].default_options == {}


def test_wrong_default_options_stop_the_start_naming_each_member(tmp_path):
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(
            write_clients(
                tmp_path,
                {"defaultOptions": {"allowedPresenters": "nobody", "joinMeetingIdSettings": {}}},
            )
        )
    text = "; ".join(raised.value.problems)
    assert "clients[0].defaultOptions.allowedPresenters" in text
    assert "clients[0].defaultOptions.joinMeetingIdSettings" in text
