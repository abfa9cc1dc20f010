"""Build the onlineMeeting object Graph returns for a new createOrGet meeting.

Ids, links and numbers are random but shaped like Teams' own, so a client that parses
them (thread id in the join link, numeric meeting id) meets realistic values.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from typing import Any
from urllib.parse import quote

from . import times
from .clouds import cloud_for
from .config import User
from .encoding import b64url
from .meetings import Meeting


def new_meeting(
    *,
    tenant_id: str,
    organizer: User,
    body: dict[str, Any],
    start: int,
    end: int,
    audience: str,
) -> Meeting:
    """A complete onlineMeeting for a validated request body; start/end are ticks."""
    chat = body.get("chatInfo") or {}
    # A beta request may name a channel thread (channel meeting); otherwise Teams
    # makes a new meeting thread.
    thread_id = chat.get("threadId") or f"19:meeting_{_random_thread_key()}@thread.v2"
    message_id = chat.get("messageId") or "0"
    join_url = _join_url(
        cloud_for(audience).teams_host, thread_id, message_id, tenant_id, organizer
    )
    meeting_id = b64url(f"1*{organizer.id}*0**{thread_id}")
    return {
        "id": meeting_id,
        "creationDateTime": times.format_utc(times.now_ticks()),
        "startDateTime": times.format_utc(start),
        "endDateTime": times.format_utc(end),
        "joinWebUrl": join_url,
        "subject": body.get("subject"),
        "externalId": body["externalId"],
        "isBroadcast": False,
        "broadcastSettings": None,
        # The meeting options, with Teams' defaults: createOrGet cannot set them (a PATCH
        # afterwards can; see meeting_update).
        "isEntryExitAnnounced": True,
        "allowedPresenters": "everyone",
        "allowedLobbyAdmitters": "organizerAndCoOrganizersAndPresenters",
        "allowMeetingChat": "enabled",
        "allowTeamworkReactions": True,
        "allowAttendeeToEnableCamera": True,
        "allowAttendeeToEnableMic": True,
        "recordAutomatically": False,
        "allowRecording": True,
        "allowTranscription": True,
        "meetingTemplateId": None,
        "videoTeleconferenceId": _digits(10),
        "audioConferencing": None,
        "joinMeetingIdSettings": {
            "isPasscodeRequired": True,
            "joinMeetingId": _digits(12),
            "passcode": _passcode(),
        },
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "chatInfo": {
            "threadId": thread_id,
            "messageId": message_id,
            "replyChainMessageId": chat.get("replyChainMessageId"),
        },
        "joinInformation": {
            "content": "data:text/html," + quote(f'<a href="{join_url}">Join the meeting now</a>'),
            "contentType": "html",
        },
        "participants": _participants(tenant_id, organizer, body.get("participants") or {}),
    }


def _participants(tenant_id: str, organizer: User, requested: dict[str, Any]) -> dict[str, Any]:
    # The organizer is always the user in the path; a requested organizer is ignored.
    participants: dict[str, Any] = {
        key: value for key, value in requested.items() if key not in ("organizer", "attendees")
    }
    participants["organizer"] = {
        "upn": organizer.upn,
        "role": "presenter",
        "identity": {
            "application": None,
            "device": None,
            "user": {
                "id": organizer.id,
                "displayName": organizer.display_name,
                "tenantId": tenant_id,
                "identityProvider": "AAD",
            },
        },
    }
    participants["attendees"] = attendee_list(requested.get("attendees") or [])
    return participants


def attendee_list(requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attendees as Graph stores them: an attendee without a role is an "attendee"."""
    return [{**attendee, "role": attendee.get("role") or "attendee"} for attendee in requested]


def _join_url(host: str, thread_id: str, message_id: str, tenant_id: str, organizer: User) -> str:
    context = json.dumps({"Tid": tenant_id, "Oid": organizer.id}, separators=(",", ":"))
    return (
        f"https://{host}/l/meetup-join/{quote(thread_id, safe='')}/{message_id}"
        f"?context={quote(context, safe='')}"
    )


def _random_thread_key() -> str:
    return b64url(str(uuid.uuid4()))


def _digits(count: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(
        secrets.choice(string.digits) for _ in range(count - 1)
    )


def _passcode() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(6))
