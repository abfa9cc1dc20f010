"""A booking's fingerprint: what two requests for one booking must agree on (the 409 rule).

It is a request in normal form (service.domain.booking) reduced to what the caller asked
for, and it is kept in the booking's record as the JSON object `request`. Records of every
format hold one, written by every release so far: the oldest lack `organizerPool`, a
record without options lacks `options`, a few hold `"options": null`, the very oldest no
`request` at all. A member a stored fingerprint lacks reads as null, as it always has, and
stays absent when the record is written back, so a record's stored text changes only where
its booking changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from service.domain import options as meeting_options
from service.domain import record_format
from service.domain.booking import Attendee, BookingRequest, ChatInfo, MeetingChange, graph_time

# The members compared for the 409 rule, in the order they are reported, and the
# attribute that holds each.
COMPARED = (
    ("organizerId", "organizer_id"),
    ("organizerPool", "organizer_pool"),
    ("subject", "subject"),
    ("startDateTime", "start"),
    ("endDateTime", "end"),
    ("attendees", "attendees"),
    ("chatInfo", "chat_info"),
)
# The effective options are compared member by member: a 409 names `options.<member>`.
OPTIONS = "options"
MEMBER_OF = {attribute: member for member, attribute in COMPARED} | {OPTIONS: OPTIONS}


@dataclass(frozen=True)
class Fingerprint:
    # None for a pool booking: it is identified by its pool, and the organizer picked for
    # it is an outcome (kept in the record), not part of what the caller asked for.
    organizer_id: str | None
    organizer_pool: str | None
    subject: str | None
    start: str | None  # Graph's DateTimeOffset text (service.domain.booking.graph_time)
    end: str | None
    # None only in a stored fingerprint that holds none: it then differs from a request's
    # (always a tuple, if an empty one).
    attendees: tuple[Attendee, ...] | None
    chat_info: ChatInfo | None
    # The effective options (the caller's defaults overlaid); None: none asked for (or, in
    # a stored one, null).
    options: dict[str, Any] | None = None
    # The members a stored fingerprint was written without, left out when written back.
    absent: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, request: BookingRequest) -> Fingerprint:
        """The fingerprint of a request (its options the effective ones, if overlaid)."""
        return cls(
            organizer_id=None if request.organizer_pool else request.organizer_id,
            organizer_pool=request.organizer_pool,
            subject=request.subject,
            start=graph_time(request.start) if request.start else None,
            end=graph_time(request.end) if request.end else None,
            attendees=request.attendees,
            chat_info=request.chat_info,
            options=dict(request.options) if request.options else None,
            # Without options, the member is left out: such a fingerprint reads like one
            # stored before options existed.
            absent=frozenset() if request.options else frozenset({OPTIONS}),
        )

    @property
    def effective_options(self) -> dict[str, Any]:
        """The effective options it holds (none in older records)."""
        return dict(self.options) if self.options else {}

    def differing_fields(self, requested: Fingerprint) -> list[str]:
        """The fields in which `requested` disagrees with this (stored) fingerprint, in the
        order a 409 names them; an option as `options.<member>`."""
        differing = [
            member
            for member, attribute in COMPARED
            if getattr(self, attribute) != getattr(requested, attribute)
        ]
        return differing + [
            f"{OPTIONS}.{member}"
            for member in meeting_options.differing_members(
                self.options, requested.effective_options
            )
        ]

    def changed_by(self, change: MeetingChange) -> Fingerprint:
        """The fingerprint a POST must match once `change` is made: the fields it names
        replaced, its options overlaid member by member on the effective ones."""
        changed: dict[str, Any] = {}
        if change.subject is not None:
            changed["subject"] = change.subject
        if change.start is not None and change.end is not None:
            changed["start"] = graph_time(change.start)
            changed["end"] = graph_time(change.end)
        if change.attendees is not None:
            changed["attendees"] = change.attendees
        absent = self.absent - {MEMBER_OF[attribute] for attribute in changed}
        effective = meeting_options.overlay(self.effective_options, change.options)
        # Like a new request's: without options, the member is left out.
        absent = absent - {OPTIONS} if effective else absent | {OPTIONS}
        return replace(self, **changed, options=effective or None, absent=absent)

    def to_stored(self) -> dict[str, Any]:
        """The JSON object the record stores (member `request`)."""
        members = {
            "organizerId": self.organizer_id,
            "organizerPool": self.organizer_pool,
            "subject": self.subject,
            "startDateTime": self.start,
            "endDateTime": self.end,
            "attendees": None if self.attendees is None else [a.to_api() for a in self.attendees],
            "chatInfo": None if self.chat_info is None else self.chat_info.to_api(),
            OPTIONS: self.options,
        }
        return {name: value for name, value in members.items() if name not in self.absent}

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Fingerprint:
        """The fingerprint a record stores, of any format; TypeError or KeyError when it
        is not one."""
        attendees = stored.get("attendees")
        chat_info = stored.get("chatInfo")
        options = stored.get(OPTIONS)
        return cls(
            organizer_id=record_format.optional_text(stored.get("organizerId")),
            organizer_pool=record_format.optional_text(stored.get("organizerPool")),
            subject=record_format.optional_text(stored.get("subject")),
            start=record_format.optional_text(stored.get("startDateTime")),
            end=record_format.optional_text(stored.get("endDateTime")),
            attendees=None if attendees is None else tuple(_attendee(a) for a in _list(attendees)),
            chat_info=None if chat_info is None else _chat_info(chat_info),
            options=None if options is None else dict(_object(options)),
            absent=frozenset(MEMBER_OF.values()) - set(stored),
        )


def _attendee(stored: Any) -> Attendee:
    found = _object(stored)
    return Attendee(
        upn=record_format.optional_text(found.get("upn")),
        user_id=record_format.optional_text(found.get("userId")),
        role=record_format.text(found["role"]),
    )


def _chat_info(stored: Any) -> ChatInfo:
    found = _object(stored)
    return ChatInfo(
        thread_id=record_format.optional_text(found.get("threadId")),
        message_id=record_format.optional_text(found.get("messageId")),
        reply_chain_message_id=record_format.optional_text(found.get("replyChainMessageId")),
    )


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _object(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value
