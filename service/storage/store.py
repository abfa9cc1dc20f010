"""The booking records in Redis: one `BookingRecord` per (caller, booking), read and written.

Every Redis failure surfaces as `StoreUnavailable` (service.storage.gateway), so callers
decide on purpose what a missing store means for them (see service.core.provisioning).
"""

from __future__ import annotations

import logging

from service.config import Settings
from service.domain.record import BookingRecord, NewerRecord, UnreadableRecord
from service.foundation.errors import StoreUnavailable
from service.storage import keys
from service.storage.gateway import STORE_RETRY_AFTER, RedisGateway

logger = logging.getLogger(__name__)


class BookingStore:
    def __init__(self, redis: RedisGateway, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings, redis: RedisGateway) -> BookingStore:
        return cls(redis, ttl_seconds=settings.booking_ttl_seconds)

    def get(self, caller_id: str, booking_id: str, *, legacy: bool = True) -> BookingRecord | None:
        """The booking's record; `legacy=False` skips the name of releases before hash
        tags, for a second read of the same booking (this release never writes it)."""

        def read() -> bytes | None:
            found = self.redis.read_bytes(keys.booking(caller_id, booking_id))
            if found is None and legacy:
                # Written before hash tags: an upgrade must not lose a record (a lost
                # cancellation would let a re-booking reuse the cancelled externalId).
                found = self.redis.read_bytes(keys.legacy_booking(caller_id, booking_id))
            return found

        raw = self.redis.run(read)
        if raw is None:
            return None
        try:
            return BookingRecord.from_stored(raw)
        except NewerRecord as error:
            # Written by a newer release during a rolling update: do not overwrite what
            # this code cannot read; the caller retries, most likely on a newer replica.
            logger.warning("booking record of a newer format: %s", error)
            raise StoreUnavailable(
                "This booking was stored by a newer version of the service.", STORE_RETRY_AFTER
            ) from None
        except UnreadableRecord as error:
            # Treated as lost: the next createOrGet on the derived externalId returns the
            # same meeting, and storing it again repairs the record.
            logger.warning("unreadable booking record treated as absent: %s", error)
            return None

    def put(self, caller_id: str, booking_id: str, record: BookingRecord) -> None:
        payload = record.to_stored()
        name = keys.booking(caller_id, booking_id)
        self.redis.run(lambda: self.redis.client.set(name, payload, ex=self.ttl_seconds))
