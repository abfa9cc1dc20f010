"""Provisioned bookings and single-flight locks in Redis.

Every Redis failure surfaces as `StoreUnavailable`, so callers decide on purpose what a
missing store means for them (see service.core.provisioning).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.client import NEVER_DECODE
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

from service.config import Settings
from service.domain.record import BookingRecord, NewerRecord, UnreadableRecord
from service.foundation import metrics
from service.foundation.errors import StoreUnavailable
from service.storage import redis_client
from service.storage.redis_client import RedisClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "mps:v1"
STORE_RETRY_AFTER = 2.0
# What a Redis failure can raise: redis-py's errors, and its cluster client's own family
# (SlotNotCoveredError, "cannot be connected"), which is not a RedisError.
REDIS_FAILURES = (redis.RedisError, RedisClusterException)

# Delete the lock only if it still holds our token: a lock that expired and was taken by
# another request must not be released by us. In the same step, if a request waits for the
# release (the waiting mark, KEYS[2]), put one element in the token's wake list (KEYS[3]):
# that wakes every request blocked on it (wait_for_release), and is kept a little (ARGV[2],
# ms) for a waiter that read the token just before the release and has not blocked yet. A
# release nobody waits for writes nothing more.
RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
    if redis.call('del', KEYS[2]) == 1 then
        redis.call('rpush', KEYS[3], '1')
        redis.call('pexpire', KEYS[3], ARGV[2])
    end
    return 1
end
return 0
"""
# The lock's token, for a request about to wait for its release: in the same step, mark the
# booking as waited for (KEYS[2], for ARGV[1] ms, renewed at each look), so the release
# wakes it. Marked after the release, it marks the next holder's: no wake is lost.
HOLDER_TO_WAIT_FOR = """
local holder = redis.call('get', KEYS[1])
if holder then
    redis.call('set', KEYS[2], '1', 'PX', ARGV[1])
end
return holder
"""
# How long a waiting mark and a wake list live: far longer than one block and the look
# that follows it, short enough to leave nothing behind.
WAKE_TTL_MS = 5000
# Redis ends a blocked command whose timeout passed on its next timer tick (every 1/hz s:
# 100 ms at the default hz 10), so a block can last that much longer than asked.
BLOCK_OVERSHOOT = 0.1
# And its answer must arrive within the client's socket timeout (REDIS_TIMEOUT_SECONDS),
# or redis-py takes it for a stalled Redis and sends the command again: this much earlier.
BLOCK_ANSWER_MARGIN = 0.05


def new_lock_token() -> str:
    return secrets.token_hex(16)


def key(kind: str, caller_id: str, booking_id: str) -> str:
    """The one place a booking's Redis keys are spelled.

    `{caller:booking}` is a Redis Cluster hash tag: a key's slot is computed from the text
    between its first `{` and the next `}`, so a booking's record and lock share one slot
    (one primary, failing over together). Neither caller ids nor booking ids can contain
    `{` or `}` (service.domain.callers, service.web.schemas), so the tag is exactly
    caller:booking, and
    caller ids cannot contain ':', so it is unambiguous even though booking ids can.
    """
    return f"{KEY_PREFIX}:{kind}:{{{caller_id}:{booking_id}}}"


def wake_key(caller_id: str, booking_id: str, token: str) -> str:
    """The list the release of the booking's lock held with `token` wakes its waiters by:
    one per token, so a release never wakes (or lets spin) those waiting on a later holder;
    in the booking's hash slot, so the release script may touch it with the lock."""
    return f"{key('wake', caller_id, booking_id)}:{token}"


def waiting_key(caller_id: str, booking_id: str) -> str:
    """The mark that a request waits for the booking's lock (see HOLDER_TO_WAIT_FOR)."""
    return key("waiting", caller_id, booking_id)


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
        redis_timeout: float | None = None,
    ) -> None:
        """`client`, or a function that builds it on first use (a RedisCluster connects when
        built; built here inside `run`, an unreachable cluster is a StoreUnavailable like
        any outage, not a service that cannot start). `redis_timeout`: the client's socket
        timeout, which bounds how long a command may block (None: the client has none)."""
        self._client: RedisClient | None = None if callable(client) else client
        self._build = client if callable(client) else None
        self._building = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self.ttl_seconds = ttl_seconds
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self._block_limit = (
            math.inf
            if redis_timeout is None
            else redis_timeout - BLOCK_OVERSHOOT - BLOCK_ANSWER_MARGIN
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BookingStore:
        return cls(
            lambda: redis_client.build(settings.redis, settings.redis_timeout),
            ttl_seconds=settings.booking_ttl_seconds,
            lock_ttl=settings.lock_ttl,
            redis_timeout=settings.redis_timeout,
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
            metrics.report_redis(up=False)
            # The error's class only: its text can name hosts, never needed here, and
            # must never carry a credential into the log.
            logger.warning("redis unavailable: %s", type(error).__name__)
            raise StoreUnavailable(
                "The booking store (Redis) is unavailable.", STORE_RETRY_AFTER
            ) from error
        metrics.report_redis(up=True)
        return result

    def get(self, caller_id: str, booking_id: str, *, legacy: bool = True) -> BookingRecord | None:
        """The booking's record; `legacy=False` skips the name of releases before hash
        tags, for a second read of the same booking (this release never writes it)."""

        def read() -> bytes | None:
            found = self.read_bytes(key("booking", caller_id, booking_id))
            if found is None and legacy:
                # Written before hash tags: an upgrade must not lose a record (a lost
                # cancellation would let a re-booking reuse the cancelled externalId).
                found = self.read_bytes(legacy_key("booking", caller_id, booking_id))
            return found

        raw = self.run(read)
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

    def read_bytes(self, name: str) -> bytes | None:
        """GET `name` as the bytes Redis holds. The client decodes replies as UTF-8 text
        (decode_responses); a value that is not (junk, whoever wrote it) would fail there,
        outside redis-py's errors. NEVER_DECODE turns decoding off for this one command, on
        the same pooled connections, for every topology; the record reader decodes."""
        found: bytes | None = self.client.execute_command(  # type: ignore[no-untyped-call]
            "GET", name, **{NEVER_DECODE: True}
        )
        return found

    def put(self, caller_id: str, booking_id: str, record: BookingRecord) -> None:
        payload = record.to_stored()
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
        """Delete the lock if `token` still holds it, and wake the requests waiting for it."""
        keys = [
            key("lock", caller_id, booking_id),
            waiting_key(caller_id, booking_id),
            wake_key(caller_id, booking_id, token),
        ]
        self.run(lambda: self.script(RELEASE_IF_OWNER)(keys=keys, args=[token, WAKE_TTL_MS]))

    def locked(self, caller_id: str, booking_id: str) -> bool:
        return bool(self.run(lambda: self.client.exists(key("lock", caller_id, booking_id))))

    def holder_to_wait_for(self, caller_id: str, booking_id: str) -> str | None:
        """The token holding the booking's lock, noting that a request waits for its
        release (which then wakes it); None when nobody holds the lock."""
        keys = [key("lock", caller_id, booking_id), waiting_key(caller_id, booking_id)]
        found = self.run(lambda: self.script(HOLDER_TO_WAIT_FOR)(keys=keys, args=[WAKE_TTL_MS]))
        return None if found is None else str(found)

    def longest_block(self, within: float) -> float:
        """How long wait_for_release may be asked to block so that it ends within `within`
        seconds and its answer within the socket timeout; 0 or less: not at all."""
        return min(within - BLOCK_OVERSHOOT, self._block_limit)

    def wait_for_release(self, caller_id: str, booking_id: str, token: str, seconds: float) -> bool:
        """Block until `token` releases the booking's lock, or about `seconds` (at most
        longest_block) pass; True if it did (released before the call too)."""
        wake = wake_key(caller_id, booking_id, token)
        # Redis reads the timeout to the millisecond, and 0 would block for ever.
        block = max(0.001, round(seconds, 3))
        # Moving the list's one element from its end to its front leaves it there, for
        # every other request woken by the same release. BRPOPLPUSH rather than BLMOVE
        # (the same RIGHT to LEFT, deprecated for it since Redis 6.2 but kept): Azure Cache
        # for Redis 6 is Redis 6.0, the first to take a decimal timeout.
        moved = self.run(lambda: self.client.brpoplpush(wake, wake, block))
        return moved is not None

    def ping(self) -> bool:
        return bool(self.run(lambda: self.client.ping()))
