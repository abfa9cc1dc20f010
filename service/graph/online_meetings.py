"""Teams online meetings (`/users/{organizer}/onlineMeetings`): the first kind of meeting
(service.core.meeting_gateway). createOrGet on the booking's externalId, then PATCHes of
the meeting, and its DELETE, each with `Prefer` when the options it carries need it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.domain import options as meeting_options
from service.domain.booking import BookingRequest, MeetingChange
from service.domain.meeting import MeetingReply
from service.domain.record import BookingRecord
from service.foundation.backoff import Budget
from service.graph.client import GraphClient, GraphResult


class OnlineMeetings:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    def budget(self) -> Budget:
        return self.graph.budget()

    def create_or_get(
        self, request: BookingRequest, external_id: str, budget: Budget
    ) -> MeetingReply:
        # With Prefer when an option needs it, so a meeting that already has, say, lobby
        # scope `invited` is reported as such and not as unknownFutureValue.
        result = self.graph.create_or_get(
            request.organizer_id,
            request.graph_body(external_id),
            prefer=meeting_options.prefer_header(request.options),
            budget=budget,
        )
        return _reply(result)

    def apply_options(self, record: BookingRecord, budget: Budget) -> MeetingReply | None:
        """One PATCH of the option members the meeting lacks, inside what is left of the
        budget (with its retries' backoff started afresh)."""
        body = meeting_options.patch_body(record.meeting, record.effective_options)
        if not body:
            return None
        result = self.graph.update(
            record.organizer_id,
            record.meeting_id,
            body,
            prefer=meeting_options.prefer_header(body),
            budget=Budget(budget.remaining()),
        )
        return _reply(result)

    def change(
        self, record: BookingRecord, change: MeetingChange, options: Mapping[str, Any]
    ) -> MeetingReply | None:
        """One PATCH of the change and of the option members the meeting lacks."""
        options_body = meeting_options.patch_body(record.meeting, options)
        body = {**change.graph_body(), **options_body}
        if not body:
            return None
        result = self.graph.update(
            record.organizer_id,
            record.meeting_id,
            body,
            prefer=meeting_options.prefer_header(options_body),
        )
        return _reply(result)

    def close_lobby(self, record: BookingRecord) -> None:
        self.graph.update(
            record.organizer_id,
            record.meeting_id,
            meeting_options.CLOSED_LOBBY,
            prefer=meeting_options.prefer_header(meeting_options.CLOSED_LOBBY),
        )

    def cancel(self, record: BookingRecord) -> bool:
        return self.graph.delete(record.organizer_id, record.meeting_id)


def _reply(result: GraphResult) -> MeetingReply:
    return MeetingReply(result.meeting, result.created, result.request_id)
