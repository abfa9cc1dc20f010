"""After provisioning: reschedule (PATCH) and cancel (DELETE) a booking's meeting.

Both run under the booking's lock, the same one POST takes, so two changes of one booking
(or a change and a POST) never interleave: each sees the state the previous one left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from service import metrics
from service.booking import MeetingChange
from service.booking_lock import held
from service.callers import Caller
from service.config import Settings
from service.graph import GraphClient
from service.record import BookingRecord, require_active
from service.store import BookingStore

logger = logging.getLogger(__name__)


class Lifecycle:
    def __init__(
        self,
        *,
        store: BookingStore,
        graph: GraphClient,
        wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.graph = graph
        self.wait_seconds = wait_seconds
        self.sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: Settings, store: BookingStore, graph: GraphClient
    ) -> Lifecycle:
        return cls(store=store, graph=graph, wait_seconds=settings.single_flight_wait)

    def reschedule(self, caller: Caller, booking_id: str, change: MeetingChange) -> BookingRecord:
        """Apply the change to the meeting at Graph, then to the stored record: a later POST
        with the new details replays, one with the old details is a 409."""
        with self._locked(caller, booking_id):
            record = require_active(self.store.get(caller.id, booking_id), booking_id)
            result = self.graph.update(record.organizer_id, record.meeting_id, change.graph_body())
            record = record.rescheduled(
                result.meeting, change.applied_to(record.request), result.request_id
            )
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
            existed = self.graph.delete(record.organizer_id, record.meeting_id)
            if not existed:
                logger.info("meeting was already gone at Graph")
            # Should this fail, the caller retries; Graph then answers 404, which is success.
            self.store.put(caller.id, booking_id, record.cancelled())
            metrics.meetings.labels(outcome="cancelled").inc()

    def _locked(self, caller: Caller, booking_id: str) -> AbstractContextManager[None]:
        return held(self.store, caller.id, booking_id, self.wait_seconds, self.sleep)
