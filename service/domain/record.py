"""The stored booking: what a caller's booking became, and how it is kept and shown.

One `BookingRecord` per (caller, booking) lives in the store. It is built when Graph
answers a createOrGet (`provisioned`), replaced when the meeting is rescheduled
(`rescheduled`) or cancelled (`cancelled`, a tombstone that keeps the generation), and
rendered for the API by `view`. Records are immutable: every change makes a new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from service.domain import options as meeting_options
from service.domain import record_format
from service.domain.fingerprint import Fingerprint
from service.foundation.errors import BookingCancelled, BookingNotFound

# Written into every record from format 1 on. Records written before it carry no version
# (and the oldest no status either); they have the same layout and read as format 1.
# Format 2 adds meeting options: the effective options in the request's fingerprint and
# `optionsPending` (written only while true: createOrGet done, the options PATCH not yet).
# Format 1 records read as format 2 without options. A release that reads only format 1
# answers 503 for a format 2 record during a rolling update (the caller retries, most
# likely on a newer replica) rather than replay a booking whose options it would ignore.
# Format 3 stores format 2's JSON document (`to_json`) compressed in a JSON envelope
# (service.domain.record_format), about 620 bytes instead of 3 KB. Formats 1 and 2 are stored as
# the JSON document itself and still read as before. A release before format 3 reads the
# envelope's formatVersion and answers 503.
FORMAT_VERSION = 3
READABLE_VERSIONS = frozenset({1, 2, 3})
# What a record without a formatVersion is.
UNVERSIONED = 1


class Status(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class UnreadableRecord(ValueError):
    """What the store holds is not a booking record this code can read."""


class NewerRecord(UnreadableRecord):
    """A record written by a newer version of the service (during a rolling update)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class BookingRecord:
    booking_id: str
    status: Status
    generation: int  # 0 for the first meeting; +1 each time a cancelled booking is re-booked
    external_id: str
    organizer_id: str  # for a pool booking, the member picked for it (for good)
    fingerprint: Fingerprint  # what the booking's requests must agree on (the 409 rule)
    meeting: dict[str, Any]  # Graph's onlineMeeting, as Graph last returned it
    provisioned_at: str | None
    graph_request_id: str | None
    updated_at: str | None = None
    cancelled_at: str | None = None
    # Graph has the meeting, but not yet the effective options (fingerprint.options): the
    # PATCH after createOrGet failed. The next POST applies them before it answers.
    options_pending: bool = False

    @classmethod
    def provisioned(
        cls,
        *,
        booking_id: str,
        generation: int,
        external_id: str,
        organizer_id: str,
        request: Fingerprint | Mapping[str, Any],
        meeting: dict[str, Any],
        graph_request_id: str | None,
    ) -> BookingRecord:
        """The record of a meeting Graph just returned; its options are pending while the
        meeting lacks any of the effective options the request asked for. `request`: the
        request's fingerprint, or one as a record stores it."""
        fingerprint = _fingerprint(request)
        return cls(
            booking_id=booking_id,
            status=Status.ACTIVE,
            generation=generation,
            external_id=external_id,
            organizer_id=organizer_id,
            fingerprint=fingerprint,
            meeting=meeting,
            provisioned_at=now(),
            graph_request_id=graph_request_id,
            options_pending=bool(
                meeting_options.patch_body(meeting, fingerprint.effective_options)
            ),
        )

    @property
    def effective_options(self) -> dict[str, Any]:
        """The options this booking asked for (its caller's defaults included)."""
        return self.fingerprint.effective_options

    @property
    def request(self) -> dict[str, Any]:
        """The fingerprint as the record's JSON stores it (member `request`)."""
        return self.fingerprint.to_stored()

    def options_applied(
        self, meeting: dict[str, Any] | None, graph_request_id: str | None
    ) -> BookingRecord:
        """The record once Graph has the options: `meeting` as the PATCH returned it (None:
        nothing needed patching)."""
        if meeting is None:
            return replace(self, options_pending=False)
        return replace(
            self,
            meeting=meeting,
            options_pending=False,
            graph_request_id=graph_request_id,
        )

    @property
    def organizer_pool(self) -> str | None:
        return self.fingerprint.organizer_pool

    @property
    def meeting_id(self) -> str:
        return str(self.meeting["id"])

    @property
    def is_active(self) -> bool:
        return self.status is Status.ACTIVE

    def require_active(self) -> BookingRecord:
        """This record, if its meeting is live; else the 404 of a cancelled booking."""
        if not self.is_active:
            raise BookingCancelled(
                f"The meeting of booking {self.booking_id!r} was cancelled at "
                f"{self.cancelled_at}. POST the booking again to get a new meeting."
            )
        return self

    def rescheduled(
        self,
        meeting: dict[str, Any],
        request: Fingerprint | Mapping[str, Any],
        graph_request_id: str | None,
    ) -> BookingRecord:
        """After a PATCH that applied the change, and with it any options still pending;
        `request`: the changed fingerprint (Fingerprint.changed_by)."""
        return replace(
            self,
            meeting=meeting,
            fingerprint=_fingerprint(request),
            updated_at=now(),
            graph_request_id=graph_request_id,
            options_pending=False,
        )

    def cancelled(self) -> BookingRecord:
        return replace(self, status=Status.CANCELLED, cancelled_at=now())

    @cached_property
    def answer(self) -> bytes:
        """`view()` as the API's answer body, rendered once per record."""
        return answer_body(self.view())

    def view(self) -> dict[str, Any]:
        """The API's body for this booking (MeetingSchema)."""
        meeting = self.meeting
        return {
            "bookingId": self.booking_id,
            "externalId": self.external_id,
            "organizerId": self.organizer_id,
            "meetingId": meeting.get("id"),
            "joinWebUrl": meeting.get("joinWebUrl"),
            "subject": meeting.get("subject"),
            "startDateTime": meeting.get("startDateTime"),
            "endDateTime": meeting.get("endDateTime"),
            "onlineMeeting": meeting,
            "options": meeting_options.in_effect(meeting),
            "optionsPending": self.options_pending,
        }

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "formatVersion": FORMAT_VERSION,
            "bookingId": self.booking_id,
            "status": self.status.value,
            "generation": self.generation,
            "externalId": self.external_id,
            "organizerId": self.organizer_id,
            "request": self.request,
            "meeting": self.meeting,
            "provisionedAt": self.provisioned_at,
            "graphRequestId": self.graph_request_id,
        }
        if self.updated_at is not None:
            document["updatedAt"] = self.updated_at
        if self.cancelled_at is not None:
            document["cancelledAt"] = self.cancelled_at
        if self.options_pending:
            document["optionsPending"] = True
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    def to_stored(self) -> str:
        """What the store keeps (format 3): the JSON document, compressed."""
        return record_format.pack(self.to_json().encode(), FORMAT_VERSION)

    @classmethod
    def from_stored(cls, raw: str | bytes) -> BookingRecord:
        """Read what the store holds, of any format this code has written; NewerRecord or
        UnreadableRecord otherwise."""
        try:
            envelope = json.loads(raw)
        except ValueError:  # UnicodeDecodeError too
            raise UnreadableRecord("not a booking record: not JSON") from None
        if not isinstance(envelope, dict) or not record_format.is_packed(envelope):
            return cls.from_document(envelope)
        _require_readable(envelope.get("formatVersion"))
        try:
            document = record_format.unpack(envelope)
        except record_format.UnknownDictionary as error:
            # Only a newer release can have written it: like a newer format, not junk.
            raise NewerRecord(str(error)) from None
        except ValueError as error:
            raise UnreadableRecord(f"not a booking record: {error}") from None
        return cls.from_json(document)

    @classmethod
    def from_json(cls, raw: str | bytes) -> BookingRecord:
        """Read a record's JSON document of any format this code has written (bytes: UTF-8);
        UnreadableRecord otherwise."""
        try:
            document = json.loads(raw)
        except ValueError:
            raise UnreadableRecord("not a booking record: not JSON") from None
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: Any) -> BookingRecord:
        """The record of a parsed JSON document; NewerRecord or UnreadableRecord otherwise."""
        try:
            _require_readable(document.get("formatVersion", UNVERSIONED))
            pending = document.get("optionsPending", False)
            if not isinstance(pending, bool):
                raise TypeError("optionsPending must be true or false")
            return cls(
                booking_id=record_format.text(document["bookingId"]),
                # Records written before cancellation existed carry no status: active.
                status=Status(document.get("status", Status.ACTIVE.value)),
                generation=int(document.get("generation", 0)),
                external_id=record_format.text(document["externalId"]),
                organizer_id=record_format.text(document["organizerId"]),
                fingerprint=Fingerprint.from_stored(_object(document.get("request", {}))),
                meeting=_object(document["meeting"]),
                provisioned_at=record_format.optional_text(document.get("provisionedAt")),
                graph_request_id=record_format.optional_text(document.get("graphRequestId")),
                updated_at=record_format.optional_text(document.get("updatedAt")),
                cancelled_at=record_format.optional_text(document.get("cancelledAt")),
                options_pending=pending,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, UnreadableRecord):
                raise
            raise UnreadableRecord(f"not a booking record: {type(error).__name__}") from None


def answer_body(document: dict[str, Any]) -> bytes:
    """A JSON answer body exactly as Flask's jsonify writes it (sorted keys, no spaces,
    ASCII only, a final newline), so answers built from stored records and answers Flask
    builds are byte for byte alike."""
    text = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return f"{text}\n".encode()


def require_active(record: BookingRecord | None, booking_id: str) -> BookingRecord:
    """The record of a booking that has a live meeting, else the right 404."""
    if record is None:
        raise BookingNotFound(
            f"No meeting was provisioned for booking {booking_id!r} by this caller."
        )
    return record.require_active()


def _fingerprint(request: Fingerprint | Mapping[str, Any]) -> Fingerprint:
    # A fingerprint as stored (what `request` answers) is one too: it reads back the same.
    return request if isinstance(request, Fingerprint) else Fingerprint.from_stored(request)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _require_readable(version: object) -> None:
    if version not in READABLE_VERSIONS:
        raise NewerRecord(f"record format {version!r}, this code reads {sorted(READABLE_VERSIONS)}")
