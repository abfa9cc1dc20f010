"""What a booking's meeting is, as the system that holds it last answered for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MeetingReply:
    """One answer about a booking's meeting (service.core.meeting_gateway)."""

    meeting: dict[str, Any]  # the meeting as Graph returned it; the record keeps it
    created: bool  # this call created the meeting (rather than finding it)
    request_id: str | None  # Graph's request-id of the answer, kept in the record
