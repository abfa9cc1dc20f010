"""Provisioned bookings and single-flight locks in Redis.

Every Redis failure surfaces as `StoreUnavailable`, so callers decide on purpose what a
missing store means for them (see service.provisioning).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.client import NEVER_DECODE
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

from service import metrics, redis_client
from service.config import Settings
from service.errors import StoreUnavailable
from service.record import BookingRecord, NewerRecord, UnreadableRecord
from service.redis_client import RedisClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "mps:v1"
STORE_RETRY_AFTER = 2.0
# What a Redis failure can raise: redis-py's errors, and its cluster client's own family
# (SlotNotCoveredError, "cannot be connected"), which is not a RedisError.
REDIS_FAILURES = (redis.RedisError, RedisClusterException)

# Delete the lock only if it still holds our token: a lock that expired and was taken by
# another request must not be released by us.
RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def new_lock_token() -> str:
    return secrets.token_hex(16)


def key(kind: str, caller_id: str, booking_id: str) -> str:
    """The one place a booking's Redis keys are spelled.

    `{caller:booking}` is a Redis Cluster hash tag: a key's slot is computed from the text
    between its first `{` and the next `}`, so a booking's record and lock share one slot
    (one primary, failing over together). Neither caller ids nor booking ids can contain
    `{` or `}` (service.callers, service.schemas), so the tag is exactly caller:booking, and
    caller ids cannot contain ':', so it is unambiguous even though booking ids can.
    """
    return f"{KEY_PREFIX}:{kind}:{{{caller_id}:{booking_id}}}"


def legacy_key(kind: str, caller_id: str, booking_id: str) -> str:
    """The name releases before hash tags used (`mps:v1:booking:<caller>:<booking>`).

    Records written under it are still read (see BookingStore.get) and are never written
    again; they expire after BOOKING_TTL_SECONDS, after which this fallback can go.
    """
    return f"{KEY_PREFIX}:{kind}:{caller_id}:{booking_id}"


class BookingStore:
    def __init__(
        self,
        client: RedisClient | Callable[[], RedisClient],
        *,
        ttl_seconds: int,
        lock_ttl: float,
    ) -> None:
        """`client`, or a function that builds it on first use (a RedisCluster connects when
        built; built here inside `run`, an unreachable cluster is a StoreUnavailable like
        any outage, not a service that cannot start)."""
        self._client: RedisClient | None = None if callable(client) else client
        self._build = client if callable(client) else None
        self._building = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self.ttl_seconds = ttl_seconds
        self.lock_ttl_ms = int(lock_ttl * 1000)

    @classmethod
    def from_settings(cls, settings: Settings) -> BookingStore:
        return cls(
            lambda: redis_client.build(settings.redis, settings.redis_timeout),
            ttl_seconds=settings.booking_ttl_seconds,
            lock_ttl=settings.lock_ttl,
        )

    @property
    def client(self) -> RedisClient:
        """The Redis client; use it inside `run`, where building it may fail."""
        if self._client is None:
            with self._building:
                if self._client is None:
                    assert self._build is not None
                    self._client = self._build()
        return self._client

    def script(self, source: str) -> Script:
        """A Lua script, registered with the client once (EVALSHA, loaded on NOSCRIPT)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self.client.register_script(source)
        return found

    def run(self, operation: Callable[[], T]) -> T:
        """Run a Redis operation; any Redis failure becomes StoreUnavailable."""
        try:
            result = operation()
        except REDIS_FAILURES as error:
            metrics.redis_up.set(0)
            # The error's class only: its text can name hosts, never needed here, and
            # must never carry a credential into the log.
            logger.warning("redis unavailable: %s", type(error).__name__)
            raise StoreUnavailable(
                "The booking store (Redis) is unavailable.", STORE_RETRY_AFTER
            ) from error
        metrics.redis_up.set(1)
        return result

    def get(self, caller_id: str, booking_id: str) -> BookingRecord | None:
        def read() -> bytes | None:
            found = self.read_bytes(key("booking", caller_id, booking_id))
            if found is None:
                # Written before hash tags: an upgrade must not lose a record (a lost
                # cancellation would let a re-booking reuse the cancelled externalId).
                found = self.read_bytes(legacy_key("booking", caller_id, booking_id))
            return found

        raw = self.run(read)
        if raw is None:
            return None
        try:
            return BookingRecord.from_bytes(raw)
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

    def read_bytes(self, name: str) -> bytes | None:
        """GET `name` as the bytes Redis holds. The client decodes replies as UTF-8 text
        (decode_responses), which compressed records are not: NEVER_DECODE turns that off
        for this one command, on the same pooled connections, for every topology."""
        found: bytes | None = self.client.execute_command(  # type: ignore[no-untyped-call]
            "GET", name, **{NEVER_DECODE: True}
        )
        return found

    def put(self, caller_id: str, booking_id: str, record: BookingRecord) -> None:
        payload = record.to_bytes()
        self.run(
            lambda: self.client.set(
                key("booking", caller_id, booking_id), payload, ex=self.ttl_seconds
            )
        )

    def acquire(self, caller_id: str, booking_id: str, token: str) -> bool:
        """Take the booking's single-flight lock with `token`; False if another holds it."""
        lock = key("lock", caller_id, booking_id)
        if self.run(lambda: self.client.set(lock, token, nx=True, px=self.lock_ttl_ms)):
            return True
        # redis-py sends a command again when its answer timed out (a stalled Redis). If
        # the first SET did land, the resent one was refused by our own lock: it is ours.
        return bool(self.run(lambda: self.client.get(lock)) == token)

    def release(self, caller_id: str, booking_id: str, token: str) -> None:
        lock = key("lock", caller_id, booking_id)
        self.run(lambda: self.script(RELEASE_IF_OWNER)(keys=[lock], args=[token]))

    def locked(self, caller_id: str, booking_id: str) -> bool:
        return bool(self.run(lambda: self.client.exists(key("lock", caller_id, booking_id))))

    def ping(self) -> bool:
        return bool(self.run(lambda: self.client.ping()))
