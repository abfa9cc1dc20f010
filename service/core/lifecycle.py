"""After provisioning: reschedule (PATCH) and cancel (DELETE) a booking's meeting.

Both run under the booking's lock, the same one POST takes, so two changes of one booking
(or a change and a POST) never interleave: each sees the state the previous one left.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from service.config import Settings
from service.core.meeting_gateway import MeetingGateway
from service.domain import options as meeting_options
from service.domain.booking import MeetingChange
from service.domain.callers import Caller
from service.domain.record import BookingRecord, require_active
from service.foundation import metrics
from service.foundation.errors import ServiceError
from service.storage.booking_lock import BookingLocks
from service.storage.store import BookingStore

logger = logging.getLogger(__name__)


class Lifecycle:
    def __init__(
        self,
        *,
        store: BookingStore,
        locks: BookingLocks,
        meetings: MeetingGateway,
        wait_seconds: float,
        close_lobby: bool = True,
    ) -> None:
        self.store = store
        self.locks = locks
        self.meetings = meetings
        self.wait_seconds = wait_seconds
        self.close_lobby = close_lobby

    @classmethod
    def from_settings(
        cls, settings: Settings, store: BookingStore, locks: BookingLocks, meetings: MeetingGateway
    ) -> Lifecycle:
        return cls(
            store=store,
            locks=locks,
            meetings=meetings,
            wait_seconds=settings.single_flight_wait,
            close_lobby=settings.cancel_closes_lobby,
        )

    def reschedule(self, caller: Caller, booking_id: str, change: MeetingChange) -> BookingRecord:
        """Apply the change to the meeting at Graph, then to the stored record: a later POST
        with the new details replays, one with the old details is a 409."""
        with self._locked(caller, booking_id):
            record = require_active(self.store.get(caller.id, booking_id), booking_id)
            request = record.fingerprint.changed_by(change)
            # The options to send: the members this change names, and all the booking's
            # options while they are still pending; each only if the meeting differs.
            wanted = meeting_options.overlay(
                record.effective_options if record.options_pending else {}, change.options
            )
            reply = self.meetings.change(record, change, wanted)
            if reply is None:
                # Nothing Graph does not already have (options it already carries).
                record = record.rescheduled(record.meeting, request, record.graph_request_id)
            else:
                record = record.rescheduled(reply.meeting, request, reply.request_id)
            # Should this fail, the caller gets 503 and retries the same PATCH: applying it
            # twice changes nothing more.
            self.store.put(caller.id, booking_id, record)
            metrics.meetings.labels(outcome="rescheduled").inc()
            return record

    def cancel(self, caller: Caller, booking_id: str) -> None:
        """Delete the meeting at Graph and keep a tombstone, so a repeated DELETE is a 404
        without calling Graph, and a new POST books a new meeting (see provisioning)."""
        with self._locked(caller, booking_id):
            record = require_active(self.store.get(caller.id, booking_id), booking_id)
            if self.close_lobby:
                self._close_lobby(record)
            existed = self.meetings.cancel(record)
            if not existed:
                logger.info("meeting was already gone at Graph")
            # Should this fail, the caller retries; Graph then answers 404, which is success.
            self.store.put(caller.id, booking_id, record.cancelled())
            metrics.meetings.labels(outcome="cancelled").inc()

    def _close_lobby(self, record: BookingRecord) -> None:
        """Graph may keep a deleted meeting's join link working: before the DELETE, send
        the lobby and the presenter role to the organizer alone, so a guest who follows
        the link waits in a lobby nobody opens. A failure does not stop the cancel."""
        try:
            self.meetings.close_lobby(record)
        except ServiceError as error:
            metrics.lobby_close_failures.inc()
            logger.warning(
                "closing the lobby before the cancel failed, deleting anyway",
                extra={"problem": error.slug, "reason": error.detail},
            )

    def _locked(self, caller: Caller, booking_id: str) -> AbstractContextManager[str]:
        return self.locks.of(caller.id, booking_id).held(self.wait_seconds)
