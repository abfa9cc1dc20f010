"""Meeting options: the onlineMeeting properties createOrGet cannot set, and the rules for
the `options` a booking asks for (and a caller's `defaultOptions`).

createOrGet takes only the externalId, subject, times and participants; every other
property of the meeting starts with Teams' default, and a PATCH after createOrGet is the
only way to change it. This module names the option properties with Graph's names and
values, checks a requested set of options against them, and works out what a PATCH must
send so that a meeting Graph returned carries the options in effect.

The enums are a checked copy of the Graph contract's (`shared/graph-contract`,
`components.schemas`): tests/unit/test_options.py compares every member and value with
the contract the emulator ships, so they cannot drift apart. They are written here, not
read from the contract at run time, because the service's image does not contain it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Graph's sentinel in an evolvable enum: the values listed after it are returned (and
# accepted) only when the request carries `Prefer: include-unknown-enum-members`.
UNKNOWN_FUTURE_VALUE = "unknownFutureValue"
PREFER_UNKNOWN_ENUM_MEMBERS = "include-unknown-enum-members"

# The contract's enums, in the contract's order (the order decides which values come
# after unknownFutureValue).
ENUMS: dict[str, tuple[str, ...]] = {
    "lobbyBypassScope": (
        "organizer",
        "organization",
        "organizationAndFederated",
        "everyone",
        "unknownFutureValue",
        "invited",
        "organizationExcludingGuests",
    ),
    "onlineMeetingPresenters": (
        "everyone",
        "organization",
        "roleIsPresenter",
        "organizer",
        "unknownFutureValue",
    ),
    "meetingChatMode": ("enabled", "disabled", "limited", "unknownFutureValue"),
    "allowedLobbyAdmitterRoles": (
        "organizerAndCoOrganizersAndPresenters",
        "organizerAndCoOrganizers",
        "unknownFutureValue",
    ),
}
BOOLEAN = "boolean"

# The members of lobbyBypassSettings (the one complex option), and their types.
LOBBY_BYPASS_MEMBERS: dict[str, str] = {
    "scope": "lobbyBypassScope",
    "isDialInBypassEnabled": BOOLEAN,
}
LOBBY_BYPASS = "lobbyBypassSettings"

# Every option a booking may set, in the order they are reported: an enum's name, BOOLEAN,
# or LOBBY_BYPASS for the object.
OPTION_TYPES: dict[str, str] = {
    LOBBY_BYPASS: LOBBY_BYPASS,
    "allowedPresenters": "onlineMeetingPresenters",
    "allowedLobbyAdmitters": "allowedLobbyAdmitterRoles",
    "allowMeetingChat": "meetingChatMode",
    "allowTeamworkReactions": BOOLEAN,
    "allowAttendeeToEnableCamera": BOOLEAN,
    "allowAttendeeToEnableMic": BOOLEAN,
    "isEntryExitAnnounced": BOOLEAN,
    "recordAutomatically": BOOLEAN,
    "allowRecording": BOOLEAN,
    "allowTranscription": BOOLEAN,
}
OPTION_MEMBERS = tuple(OPTION_TYPES)

JOIN_MEETING_ID_SETTINGS = "joinMeetingIdSettings"
JOIN_MEETING_ID_RULE = (
    "cannot be set: Graph sets joinMeetingIdSettings (isPasscodeRequired) only when a meeting "
    "is created, createOrGet does not take it, and PATCH cannot change it"
)

# What the service's cancel sends before the DELETE: nobody bypasses the lobby (dial-in
# callers neither) and only the organizer presents, so a guest who follows a join link
# Graph keeps alive waits in a lobby nobody opens.
CLOSED_LOBBY: dict[str, Any] = {
    LOBBY_BYPASS: {"scope": "organizer", "isDialInBypassEnabled": False},
    "allowedPresenters": "organizer",
}


def settable_values(enum: str) -> tuple[str, ...]:
    """The values a caller may ask for: all but the unknownFutureValue sentinel."""
    return tuple(value for value in ENUMS[enum] if value != UNKNOWN_FUTURE_VALUE)


def needs_prefer_value(enum: str, value: Any) -> bool:
    """Whether Graph takes and returns this value only with the Prefer header."""
    values = ENUMS[enum]
    return (
        isinstance(value, str)
        and value in values
        and UNKNOWN_FUTURE_VALUE in values
        and values.index(value) > values.index(UNKNOWN_FUTURE_VALUE)
    )


class OptionsError(ValueError):
    """Invalid options; `errors` maps each member's path (below `options`) to the rule."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse(value: Any) -> dict[str, Any]:
    """A checked, normal copy of requested options (members in OPTION_MEMBERS order), or
    OptionsError naming every member that is wrong (`allowedPresenters`,
    `lobbyBypassSettings.scope`, ...)."""
    if not isinstance(value, dict):
        raise OptionsError({"_schema": "must be an object of meeting options"})
    errors: dict[str, str] = {}
    for name in value:
        if name == JOIN_MEETING_ID_SETTINGS:
            errors[name] = JOIN_MEETING_ID_RULE
        elif name not in OPTION_TYPES:
            errors[name] = "is not a meeting option this service sets; options are " + ", ".join(
                OPTION_MEMBERS
            )
    parsed: dict[str, Any] = {}
    for name, kind in OPTION_TYPES.items():
        if name not in value:
            continue
        if kind == LOBBY_BYPASS:
            lobby = _lobby_bypass(value[name], errors)
            if lobby is not None:
                parsed[name] = lobby
            continue
        problem = _check(kind, value[name])
        if problem:
            errors[name] = problem
        else:
            parsed[name] = value[name]
    if errors:
        raise OptionsError(errors)
    return parsed


def _lobby_bypass(value: Any, errors: dict[str, str]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        errors[LOBBY_BYPASS] = "must be an object with scope and/or isDialInBypassEnabled"
        return None
    if not value:
        errors[LOBBY_BYPASS] = "must set scope, isDialInBypassEnabled or both"
        return None
    found: dict[str, Any] = {}
    for name in value:
        if name not in LOBBY_BYPASS_MEMBERS:
            errors[f"{LOBBY_BYPASS}.{name}"] = "is not a member of lobbyBypassSettings"
    for name, kind in LOBBY_BYPASS_MEMBERS.items():
        if name in value:
            problem = _check(kind, value[name])
            if problem:
                errors[f"{LOBBY_BYPASS}.{name}"] = problem
            else:
                found[name] = value[name]
    return found


def _check(kind: str, value: Any) -> str | None:
    if kind == BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    allowed = settable_values(kind)
    if isinstance(value, str) and value in allowed:
        return None
    return "must be one of " + ", ".join(allowed)


def overlay(defaults: Mapping[str, Any], requested: Mapping[str, Any]) -> dict[str, Any]:
    """A caller's defaults overlaid by a request's options, member by member at the top
    level (a requested lobbyBypassSettings replaces the default's whole object)."""
    merged = {**defaults, **requested}
    return {name: merged[name] for name in OPTION_MEMBERS if name in merged}


def differing_members(stored: Mapping[str, Any] | None, requested: Mapping[str, Any]) -> list[str]:
    """The option members two bookings' effective options disagree on ("no options" and
    an empty set are the same)."""
    stored = stored or {}
    return [
        name
        for name in OPTION_MEMBERS
        if (name in stored or name in requested) and stored.get(name) != requested.get(name)
    ]


def patch_body(meeting: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH that gives `meeting` (as Graph returned it) the `wanted` options: only the
    members that differ. A lobbyBypassSettings is sent whole (Graph replaces a complex
    value whole), its members that were not asked for kept as the meeting has them."""
    body: dict[str, Any] = {}
    for name, value in wanted.items():
        if name == LOBBY_BYPASS:
            current = meeting.get(LOBBY_BYPASS)
            current = current if isinstance(current, dict) else {}
            if any(current.get(member) != inner for member, inner in value.items()):
                kept = {
                    member: current[member]
                    for member in LOBBY_BYPASS_MEMBERS
                    if current.get(member) not in (None, UNKNOWN_FUTURE_VALUE)
                }
                body[name] = {**kept, **value}
        elif meeting.get(name) != value:
            body[name] = value
    return body


def needs_prefer(options: Mapping[str, Any]) -> bool:
    """Whether a request carrying these options (or answered with them) needs
    `Prefer: include-unknown-enum-members`: a value listed after unknownFutureValue."""
    for name, value in options.items():
        kind = OPTION_TYPES.get(name)
        if kind == LOBBY_BYPASS and isinstance(value, dict):
            if needs_prefer_value("lobbyBypassScope", value.get("scope")):
                return True
        elif kind in ENUMS and needs_prefer_value(kind, value):
            return True
    return False


def prefer_header(options: Mapping[str, Any]) -> str | None:
    """The `Prefer` header of a Graph request carrying these options (or answered with
    them): include-unknown-enum-members when one of them needs it, else none."""
    return PREFER_UNKNOWN_ENUM_MEMBERS if needs_prefer(options) else None


def in_effect(meeting: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a meeting as Graph returned it (the members it carries)."""
    return {name: meeting[name] for name in OPTION_MEMBERS if name in meeting}


def json_schema(*, for_answers: bool = False) -> dict[str, Any]:
    """The JSON Schema of `options` (requests) or of the options in effect (answers, where
    Graph may also report unknownFutureValue)."""

    def member(kind: str) -> dict[str, Any]:
        if kind == BOOLEAN:
            return {"type": "boolean"} if not for_answers else {"type": ["boolean", "null"]}
        values = list(ENUMS[kind] if for_answers else settable_values(kind))
        if for_answers:
            return {"type": ["string", "null"], "enum": [*values, None]}
        return {"type": "string", "enum": values}

    lobby: dict[str, Any] = {
        "type": "object",
        "properties": {name: member(kind) for name, kind in LOBBY_BYPASS_MEMBERS.items()},
        "description": "Who bypasses the lobby; a member left out keeps Graph's value",
    }
    if for_answers:
        lobby = {"anyOf": [lobby, {"type": "null"}]}
    else:
        lobby["additionalProperties"] = False
        lobby["minProperties"] = 1
    properties = {
        name: lobby if kind == LOBBY_BYPASS else member(kind) for name, kind in OPTION_TYPES.items()
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if not for_answers:
        schema["additionalProperties"] = False
    return schema
