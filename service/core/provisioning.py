"""The idempotency core: one Graph meeting per (caller, booking), however often asked.

Three layers make it hold:
1. externalId is derived from (caller, booking), so Graph's createOrGet itself returns the
   same meeting for every retry, replica and restart, even without our store;
2. the store answers repeats without calling Graph, and keeps the request's fingerprint so
   a repeat with other details is refused (409) instead of silently returning the old one;
3. a per-booking lock in Redis lets one request call Graph while concurrent ones wait.

Meeting options make provisioning two steps, both under the booking's lock and sharing
one Graph budget: createOrGet, then (only if the meeting Graph returned lacks some of the
effective options) one PATCH of just the differing members, then store. When the PATCH
fails, the record is stored with its options pending and the error goes to the caller
(503 + Retry-After): the next POST of the booking applies them without a second
createOrGet. A booking whose options are in effect replays without calling Graph.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace

from service.config import Settings
from service.core.meeting_gateway import MeetingGateway
from service.core.organizers import Organizers
from service.core.quota import OrganizerQuota
from service.domain.booking import BookingRequest, external_id
from service.domain.callers import Caller
from service.domain.fingerprint import Fingerprint
from service.domain.meeting import MeetingReply
from service.domain.record import BookingRecord, require_active
from service.foundation import metrics
from service.foundation.backoff import Budget
from service.foundation.errors import (
    BookingConflict,
    GraphTimeout,
    GraphUnavailable,
    ServiceError,
    StoreUnavailable,
)
from service.storage.booking_lock import BookingLock, BookingLocks
from service.storage.store import BookingStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    record: BookingRecord
    created: bool  # Graph created the meeting in this request
    replayed: bool  # answered from the store, without calling Graph


class Provisioner:
    def __init__(
        self,
        *,
        store: BookingStore,
        locks: BookingLocks,
        meetings: MeetingGateway,
        organizers: Organizers,
        quota: OrganizerQuota,
        namespace: uuid.UUID,
        wait_seconds: float,
    ) -> None:
        self.store = store
        self.locks = locks
        self.meetings = meetings
        self.organizers = organizers
        self.quota = quota
        self.namespace = namespace
        self.wait_seconds = wait_seconds

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: BookingStore,
        locks: BookingLocks,
        meetings: MeetingGateway,
        organizers: Organizers,
        quota: OrganizerQuota,
    ) -> Provisioner:
        return cls(
            store=store,
            locks=locks,
            meetings=meetings,
            organizers=organizers,
            quota=quota,
            namespace=settings.external_id_namespace,
            wait_seconds=settings.single_flight_wait,
        )

    def provision(self, caller: Caller, request: BookingRequest) -> Outcome:
        self.organizers.check(caller, request)
        request = request.with_default_options(caller.default_options)
        lock = self.locks.of(caller.id, request.booking_id)
        try:
            return self._single_flight(caller, request, lock)
        except StoreUnavailable:
            if request.organizer_pool is not None:
                # Without the store, the organizer picked earlier for this booking is
                # unknown; picking again could create a second meeting under another one.
                raise
            # Degraded on purpose: without Redis we cannot replay, detect conflicts or
            # coordinate, but createOrGet on the derived externalId still yields exactly one
            # meeting, so booking systems keep working through a Redis outage.
            logger.warning("store unavailable, calling Graph directly")
            ext_id = external_id(self.namespace, caller.id, request.booking_id)
            try:
                budget = self.meetings.budget()
                reply = self.meetings.create_or_get(request, ext_id, budget)
                outcome = self._outcome(request, ext_id, 0, reply)
                return replace(outcome, record=self._apply_options(outcome.record, budget))
            finally:
                # A lock SET that timed out may still have landed in a stalled Redis; left
                # there, it would hold up this booking until it expires.
                lock.release()

    def lookup(self, caller: Caller, booking_id: str) -> BookingRecord:
        return require_active(self.store.get(caller.id, booking_id), booking_id)

    def _single_flight(self, caller: Caller, request: BookingRequest, lock: BookingLock) -> Outcome:
        for attempt in lock.attempts(self.wait_seconds):
            record = self.store.get(caller.id, request.booking_id)
            if record is not None and record.is_active and not record.options_pending:
                return self._replay(record, request)
            if record is not None and record.is_active:
                self._check_same(record, request)  # a 409 needs no lock
            if lock.acquire():
                return self._as_owner(caller, request, lock, record)
            if attempt == 0:
                metrics.meetings.labels(outcome="waited").inc()
        raise AssertionError("unreachable: attempts() ends by raising BookingBusy")

    def _as_owner(
        self, caller: Caller, request: BookingRequest, lock: BookingLock, seen: BookingRecord | None
    ) -> Outcome:
        """Provision as the lock's owner; `seen`: the record read just before the lock."""
        # The lock outlives the token and Graph budgets (checked in config), so normally
        # only its owner calls Graph. Should it expire early anyway (a paused worker), a
        # second request may call createOrGet concurrently; that is still correct, because
        # createOrGet is idempotent on the externalId and returns the same meeting.
        try:
            # Re-read: the previous owner may have stored the meeting between our read and
            # our lock. Only under the current name: nothing writes the old one, so what it
            # held is in `seen` (a cancellation there must still raise the generation).
            record = self.store.get(caller.id, request.booking_id, legacy=False) or seen
            if record is not None and record.is_active:
                if record.options_pending:
                    return self._finish_options(caller, record, request)
                return self._replay(record, request)
            # A cancelled booking booked again gets a new externalId generation, so Graph
            # cannot hand back the cancelled meeting.
            generation = record.generation + 1 if record else 0
            request = self.organizers.assign(caller, request)
            ext_id = external_id(self.namespace, caller.id, request.booking_id, generation)
            budget = self.meetings.budget()
            with self.quota.reserve(request.organizer_id) as reservation:
                reply = self.meetings.create_or_get(request, ext_id, budget)
                if reply.created:
                    reservation.keep()
            outcome = self._outcome(request, ext_id, generation, reply)
            record = self._apply_options_or_store(caller, outcome.record, budget)
            self._store(caller, record)
            return replace(outcome, record=record)
        finally:
            lock.release()

    def _finish_options(
        self, caller: Caller, record: BookingRecord, request: BookingRequest
    ) -> Outcome:
        """The second step of a booking whose first one (createOrGet) is stored: PATCH the
        options, store, answer 200. No second createOrGet."""
        self._check_same(record, request)
        record = self._apply_options_or_store(caller, record, self.meetings.budget())
        self._store(caller, record)
        metrics.meetings.labels(outcome="options_applied").inc()
        return Outcome(record, created=False, replayed=False)

    def _apply_options_or_store(
        self, caller: Caller, record: BookingRecord, budget: Budget
    ) -> BookingRecord:
        """Apply pending options; if that fails, store the record (options pending) before
        the error reaches the caller, so the next POST does not call createOrGet again."""
        try:
            return self._apply_options(record, budget)
        except ServiceError:
            self._store(caller, record)
            raise

    def _apply_options(self, record: BookingRecord, budget: Budget) -> BookingRecord:
        """Give the meeting the options it lacks; the record with Graph's answer."""
        if not record.options_pending:
            return record
        try:
            reply = self.meetings.apply_options(record, budget)
        except (GraphUnavailable, GraphTimeout) as error:
            raise _options_left_pending(error) from None
        if reply is None:
            return record.options_applied(None, None)
        return record.options_applied(reply.meeting, reply.request_id)

    def _store(self, caller: Caller, record: BookingRecord) -> None:
        try:
            self.store.put(caller.id, record.booking_id, record)
        except StoreUnavailable:
            # The meeting exists and the caller gets it; a later request will ask Graph
            # again and get the same meeting back (and PATCH what is still missing).
            logger.warning("meeting provisioned but not stored")

    def _check_same(self, record: BookingRecord, request: BookingRequest) -> None:
        differing = record.fingerprint.differing_fields(Fingerprint.of(request))
        if differing:
            metrics.meetings.labels(outcome="conflict").inc()
            raise BookingConflict(request.booking_id, differing)

    def _replay(self, record: BookingRecord, request: BookingRequest) -> Outcome:
        self._check_same(record, request)
        metrics.meetings.labels(outcome="replayed").inc()
        return Outcome(record, created=False, replayed=True)

    def _outcome(
        self, request: BookingRequest, ext_id: str, generation: int, reply: MeetingReply
    ) -> Outcome:
        metrics.meetings.labels(outcome="created" if reply.created else "existing").inc()
        record = BookingRecord.provisioned(
            booking_id=request.booking_id,
            generation=generation,
            external_id=ext_id,
            organizer_id=request.organizer_id,
            request=Fingerprint.of(request),
            meeting=reply.meeting,
            graph_request_id=reply.request_id,
        )
        return Outcome(record, created=reply.created, replayed=False)


def _options_left_pending(error: GraphUnavailable | GraphTimeout) -> GraphUnavailable:
    """The 503 of a booking whose meeting exists but whose options PATCH failed (logged
    and counted here): the same POST after Retry-After applies them."""
    logger.warning("meeting options not applied, left pending", extra={"reason": str(error)})
    metrics.options_pending.inc()
    extensions = {
        key: value
        for key, value in error.extensions.items()
        if key in ("reason", "clientRequestId", "graphRequestId")
    }
    extensions.setdefault("reason", "timeout")
    return GraphUnavailable(
        "The meeting exists, but Microsoft Graph did not take its options within the "
        "budget, so they are not in effect yet. Retrying the same POST after "
        "Retry-After applies them to that same meeting.",
        retry_after=getattr(error, "retry_after", 1),
        extensions=extensions,
    )
