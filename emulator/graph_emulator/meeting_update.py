"""Apply a PATCH body to a stored onlineMeeting, with Graph's update rules.

Graph's documented rules (onlinemeeting-update, and the contract's PATCH operation):

- only the properties the contract lists as updatable change
  (``x-ms-updatable-properties-v1.0-docs``);
- changing the time needs both ``startDateTime`` and ``endDateTime``;
- ``participants.organizer`` cannot be changed;
- ``participants.attendees`` is the full new list: it replaces the old one.

Where Graph's behaviour is not documented the emulator is strict, so that a client
which works against it does not depend on a change Graph might silently drop:

- the end must be later than the start;
- a property that is not updatable is refused unless the body repeats the stored
  value (a client may send back what it read); so is a property the contract does not
  declare, although onlineMeeting is an open type (a misspelt ``startDatetime`` would
  otherwise change nothing);
- an organizer is accepted only if it names the stored organizer (by user id, else by
  UPN), and then changes nothing;
- complex values (``lobbyBypassSettings``, ``broadcastSettings``) are replaced whole;
  a null time, ``participants`` or organizer is refused;
- annotations such as ``@odata.type`` are ignored.

The body has already been checked against the contract's onlineMeeting schema.
"""

from __future__ import annotations

from typing import Any

from . import schema, times
from .meeting_builder import attendee_list
from .meetings import Meeting

MEETING_TYPE = "microsoft.graph.onlineMeeting"
PARTICIPANTS_TYPE = "microsoft.graph.meetingParticipants"
TIMES = ("startDateTime", "endDateTime")
ORGANIZER_FIXED = "The organizer of an online meeting cannot be changed."
_ABSENT = object()  # a stored meeting never holds this value


class UpdateRejected(ValueError):
    """Graph would answer 400 BadRequest; the message says why."""


def apply_update(meeting: Meeting, body: dict[str, Any], version: str) -> Meeting:
    """Return an updated copy of ``meeting``; ``meeting`` itself is not changed."""
    updatable = schema.updatable_properties(version)
    updated = dict(meeting)
    for name, value in body.items():
        if name.startswith("@") or name in TIMES:
            continue  # annotations are ignored; times are checked together below
        if name == "participants":
            updated[name] = _participants(meeting[name], value, version)
        elif name in updatable:
            updated[name] = value
        elif meeting.get(name, _ABSENT) != value:
            raise UpdateRejected(_not_updatable(name, MEETING_TYPE, version))
    updated.update(_times(body))
    return updated


def _times(body: dict[str, Any]) -> dict[str, str]:
    given = [name for name in TIMES if name in body]
    if not given:
        return {}
    if len(given) == 1:
        raise UpdateRejected(
            "Changing the meeting time requires both startDateTime and endDateTime."
        )
    start_text, end_text = body["startDateTime"], body["endDateTime"]
    if start_text is None or end_text is None:
        raise UpdateRejected("startDateTime and endDateTime cannot be null.")
    try:
        start, end = times.parse(start_text), times.parse(end_text)
    except ValueError as exc:  # matches the contract's pattern but is no real date
        raise UpdateRejected(str(exc)) from exc
    if end <= start:
        raise UpdateRejected("endDateTime must be later than startDateTime.")
    return {"startDateTime": times.format_utc(start), "endDateTime": times.format_utc(end)}


def _participants(current: dict[str, Any], requested: Any, version: str) -> dict[str, Any]:
    if requested is None:
        raise UpdateRejected("participants cannot be null.")
    declared = schema.properties(PARTICIPANTS_TYPE, version)
    updated = dict(current)
    for name, value in requested.items():
        if name.startswith("@"):
            continue
        if name == "organizer":
            if not _names_organizer(value, current["organizer"]):
                raise UpdateRejected(ORGANIZER_FIXED)
        elif name == "attendees":
            updated[name] = attendee_list(value)  # the full new list
        elif name in declared:
            updated[name] = value  # beta's contributors and producers: replaced whole
        else:
            raise UpdateRejected(_not_updatable(name, PARTICIPANTS_TYPE, version))
    return updated


def _names_organizer(proposed: Any, organizer: dict[str, Any]) -> bool:
    if not isinstance(proposed, dict):
        return False
    user = (proposed.get("identity") or {}).get("user") or {}
    if user.get("id"):
        return str(user["id"]).lower() == str(organizer["identity"]["user"]["id"]).lower()
    upn, stored_upn = proposed.get("upn"), organizer.get("upn")
    return bool(upn and stored_upn) and str(upn).lower() == str(stored_upn).lower()


def _not_updatable(name: str, type_name: str, version: str) -> str:
    if name in schema.properties(type_name, version):
        return f"The property '{name}' cannot be updated."
    return f"The property '{name}' does not exist on type '{type_name}'."
