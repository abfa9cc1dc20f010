"""A booking request in normal form: what identifies it, what Graph gets, what must match.

The normal form (UTC times, lower-case GUIDs, sorted attendees) is what the store keeps as
the request's fingerprint, so two requests that mean the same meeting compare equal even
when they are spelled differently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The fields compared for the 409 rule, in the order they are reported.
FINGERPRINT_FIELDS = (
    "organizerId",
    "subject",
    "startDateTime",
    "endDateTime",
    "attendees",
    "chatInfo",
)


def external_id(namespace: uuid.UUID, caller_id: str, booking_id: str) -> str:
    """Graph's externalId for a caller's booking: UUIDv5(namespace, "<caller>:<booking>").

    Deterministic, so every replica and every restart computes the same id, and Graph's
    createOrGet returns the same meeting even when our store has lost the booking. Caller
    ids cannot contain ':', so two (caller, booking) pairs never produce the same name.
    """
    return str(uuid.uuid5(namespace, f"{caller_id}:{booking_id}"))


def graph_time(moment: datetime) -> str:
    """Graph's DateTimeOffset in UTC, e.g. 2026-11-21T09:00:00.0000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


@dataclass(frozen=True)
class Attendee:
    upn: str | None
    user_id: str | None
    role: str

    def to_graph(self) -> dict[str, Any]:
        participant: dict[str, Any] = {"role": self.role}
        if self.upn is not None:
            participant["upn"] = self.upn
        if self.user_id is not None:
            participant["identity"] = {"user": {"id": self.user_id}}
        return participant

    def to_api(self) -> dict[str, Any]:
        return {"upn": self.upn, "userId": self.user_id, "role": self.role}


@dataclass(frozen=True)
class ChatInfo:
    thread_id: str | None
    message_id: str | None
    reply_chain_message_id: str | None

    def to_api(self) -> dict[str, Any]:
        return {
            "threadId": self.thread_id,
            "messageId": self.message_id,
            "replyChainMessageId": self.reply_chain_message_id,
        }


@dataclass(frozen=True)
class BookingRequest:
    booking_id: str
    organizer_id: str
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[Attendee, ...] = field(default_factory=tuple)
    chat_info: ChatInfo | None = None

    @classmethod
    def create(
        cls,
        *,
        booking_id: str,
        organizer_id: str,
        subject: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        attendees: list[Attendee] | None = None,
        chat_info: ChatInfo | None = None,
    ) -> BookingRequest:
        normal = sorted(
            (
                Attendee(
                    upn=a.upn.lower() if a.upn else None,
                    user_id=a.user_id.lower() if a.user_id else None,
                    role=a.role,
                )
                for a in attendees or []
            ),
            key=lambda a: (a.user_id or "", a.upn or "", a.role),
        )
        return cls(
            booking_id=booking_id,
            organizer_id=organizer_id.lower(),
            subject=subject,
            start=start.astimezone(UTC) if start else None,
            end=end.astimezone(UTC) if end else None,
            attendees=tuple(normal),
            chat_info=chat_info,
        )

    def fingerprint(self) -> dict[str, Any]:
        """The normal form the 409 rule compares; JSON-ready, stored with the meeting."""
        return {
            "organizerId": self.organizer_id,
            "subject": self.subject,
            "startDateTime": graph_time(self.start) if self.start else None,
            "endDateTime": graph_time(self.end) if self.end else None,
            "attendees": [a.to_api() for a in self.attendees],
            "chatInfo": self.chat_info.to_api() if self.chat_info else None,
        }

    def graph_body(self, external_id: str) -> dict[str, Any]:
        """The createOrGet request body. Absent times are left out so Graph's defaults apply."""
        body: dict[str, Any] = {"externalId": external_id}
        if self.subject is not None:
            body["subject"] = self.subject
        if self.start is not None:
            body["startDateTime"] = graph_time(self.start)
        if self.end is not None:
            body["endDateTime"] = graph_time(self.end)
        if self.attendees:
            body["participants"] = {"attendees": [a.to_graph() for a in self.attendees]}
        if self.chat_info is not None:
            body["chatInfo"] = {
                key: value for key, value in self.chat_info.to_api().items() if value is not None
            }
        return body


def differing_fields(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """Names of the fingerprint fields in which two requests for one booking disagree."""
    return [name for name in FINGERPRINT_FIELDS if stored.get(name) != requested.get(name)]
