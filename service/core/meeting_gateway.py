"""What the use cases ask of the system that holds a kind of meeting.

Provisioning and the lifecycle speak to Graph only through this protocol, so another kind
of meeting is another implementation of it; the first, Teams online meetings, is
service.graph.online_meetings. Each operation gets the booking as the domain knows it and
answers with the meeting as that system returned it (service.domain.meeting). Graph's
errors arrive as the problem types of service.foundation.errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from service.domain.booking import BookingRequest, MeetingChange
from service.domain.meeting import MeetingReply
from service.domain.record import BookingRecord
from service.foundation.backoff import Budget


class MeetingGateway(Protocol):
    def budget(self) -> Budget:
        """A new time budget, for the calls that must share one (one booking's create or
        find, then its options)."""
        ...

    def create_or_get(
        self, request: BookingRequest, external_id: str, budget: Budget
    ) -> MeetingReply:
        """The meeting of `external_id`, created for the request if there is none yet."""
        ...

    def apply_options(self, record: BookingRecord, budget: Budget) -> MeetingReply | None:
        """Give the booking's meeting the effective options it lacks; None when it lacks
        none (nothing was sent)."""
        ...

    def change(
        self, record: BookingRecord, change: MeetingChange, options: Mapping[str, Any]
    ) -> MeetingReply | None:
        """Make `change`, and give the meeting those of `options` it lacks; None when
        there is nothing the meeting does not already have (nothing was sent)."""
        ...

    def close_lobby(self, record: BookingRecord) -> None:
        """Leave the meeting's lobby and its presenter role to the organizer alone."""
        ...

    def cancel(self, record: BookingRecord) -> bool:
        """Delete the meeting; False when it was already gone."""
        ...
