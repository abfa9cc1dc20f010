"""A booking request in normal form: what identifies it and what Graph gets.

The normal form (UTC times, lower-case GUIDs, sorted attendees) is what the request's
fingerprint is made of (service.domain.fingerprint), so two requests that mean the same
meeting compare equal even when they are spelled differently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from service.domain import options as meeting_options


def external_id(namespace: uuid.UUID, caller_id: str, booking_id: str, generation: int = 0) -> str:
    """Graph's externalId for a caller's booking: UUIDv5(namespace, "<caller>:<booking>").

    Deterministic, so every replica and every restart computes the same id, and Graph's
    createOrGet returns the same meeting even when our store has lost the booking. Caller
    ids cannot contain ':', so two (caller, booking) pairs never produce the same name.

    A booking that was cancelled and booked again gets a new generation, and generation n
    > 0 is UUIDv5 of "<caller>:<booking>:<n>": createOrGet must never hand back the
    cancelled meeting. Booking ids may contain ':', but generation 0 has no suffix and
    the store keeps the generation, so the id is only ever computed from (caller, booking,
    generation) as stored, never parsed back.
    """
    name = (
        f"{caller_id}:{booking_id}" if generation == 0 else f"{caller_id}:{booking_id}:{generation}"
    )
    return str(uuid.uuid5(namespace, name))


def graph_time(moment: datetime) -> str:
    """Graph's DateTimeOffset in UTC, e.g. 2026-11-21T09:00:00.0000000Z.

    Not strftime: its %Y does not pad years before 1000 to four digits on glibc.
    """
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


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


def normal_attendees(attendees: list[Attendee]) -> tuple[Attendee, ...]:
    """Lower-case ids, sorted: the same people in another order or case compare equal."""
    return tuple(
        sorted(
            (
                Attendee(
                    upn=a.upn.lower() if a.upn else None,
                    user_id=a.user_id.lower() if a.user_id else None,
                    role=a.role,
                )
                for a in attendees
            ),
            key=lambda a: (a.user_id or "", a.upn or "", a.role),
        )
    )


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
    # Empty while a pool request has not been given its organizer (service.core.organizers).
    organizer_id: str
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[Attendee, ...] = field(default_factory=tuple)
    chat_info: ChatInfo | None = None
    organizer_pool: str | None = None
    # The meeting options asked for (service.domain.options, checked); once the caller's
    # defaults are overlaid (with_default_options), the effective options.
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        booking_id: str,
        organizer_id: str | None = None,
        organizer_pool: str | None = None,
        subject: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        attendees: list[Attendee] | None = None,
        chat_info: ChatInfo | None = None,
        options: dict[str, Any] | None = None,
    ) -> BookingRequest:
        return cls(
            booking_id=booking_id,
            organizer_id=organizer_id.lower() if organizer_id else "",
            organizer_pool=organizer_pool,
            subject=subject,
            start=start.astimezone(UTC) if start else None,
            end=end.astimezone(UTC) if end else None,
            attendees=normal_attendees(attendees or []),
            chat_info=chat_info,
            options=meeting_options.overlay({}, options or {}),
        )

    def with_default_options(self, defaults: dict[str, Any]) -> BookingRequest:
        """The request with its caller's defaultOptions overlaid by its own options."""
        return replace(self, options=meeting_options.overlay(defaults, self.options))

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


@dataclass(frozen=True)
class MeetingChange:
    """A PATCH of a booking's meeting: only the fields given change."""

    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[Attendee, ...] | None = None  # the full new list when given
    # Option members to change (service.domain.options, checked), overlaid member by member on
    # the booking's effective options.
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        subject: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        attendees: list[Attendee] | None = None,
        options: dict[str, Any] | None = None,
    ) -> MeetingChange:
        return cls(
            subject=subject,
            start=start.astimezone(UTC) if start else None,
            end=end.astimezone(UTC) if end else None,
            attendees=None if attendees is None else normal_attendees(attendees),
            options=meeting_options.overlay({}, options or {}),
        )

    def graph_body(self) -> dict[str, Any]:
        """The PATCH body: Graph needs both times together and the full attendee list."""
        body: dict[str, Any] = {}
        if self.subject is not None:
            body["subject"] = self.subject
        if self.start is not None and self.end is not None:
            body["startDateTime"] = graph_time(self.start)
            body["endDateTime"] = graph_time(self.end)
        if self.attendees is not None:
            body["participants"] = {"attendees": [a.to_graph() for a in self.attendees]}
        return body
