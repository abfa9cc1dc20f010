"""A booking's lock in Redis: the one mechanism POST (single flight) and PATCH/DELETE
(serialised changes) share, from taking it to letting it go.

The lock is one key holding its holder's token, with a TTL (LOCK_TTL_SECONDS), so a holder
that died holds nobody up for long. A request that finds it taken waits for its turn
blocked in Redis: one script reads the holder's token and marks the booking as waited for
(HOLDER_TO_WAIT_FOR), then the request blocks on that token's wake list until the holder's
release, a compare-and-delete of its own token (RELEASE_IF_OWNER), fills the list. A
release that fails because Redis is unreachable is tried again later (LaterReleases).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace

from service.config import Settings
from service.foundation.errors import BookingBusy, StoreUnavailable
from service.storage import keys
from service.storage.gateway import RedisGateway

logger = logging.getLogger(__name__)

# Delete the lock only if it still holds our token: a lock that expired and was taken by
# another request must not be released by us. In the same step, if a request waits for the
# release (the waiting mark, KEYS[2]), put one element in the token's wake list (KEYS[3]):
# that wakes every request blocked on it (wait_for_release), and is kept a little (ARGV[2],
# ms) for a waiter that read the token just before the release and has not blocked yet. A
# release nobody waits for writes nothing more.
tracer = trace.get_tracer(__name__)

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

# A request waiting for a booking's lock blocks in Redis until the holder's release wakes
# it (BookingLock.wait_for_release), but at most this long at a time before it looks at
# the lock again: a holder that died wakes nobody, and its lock, once expired, should be
# taken within a fraction of a second.
LONGEST_BLOCK = 0.2
# A block shorter than this is not worth a round trip (the wait's last moments, or a
# REDIS_TIMEOUT_SECONDS too short to block within it): the waiter sleeps for up to POLL
# instead, then looks at the lock again.
SHORTEST_BLOCK = 0.01
POLL = 0.1
# Redis ends a blocked command whose timeout passed on its next timer tick (every 1/hz s:
# 100 ms at the default hz 10), so a block can last that much longer than asked.
BLOCK_OVERSHOOT = 0.1
# And its answer must arrive within the client's socket timeout (REDIS_TIMEOUT_SECONDS),
# or redis-py takes it for a stalled Redis and sends the command again: this much earlier.
BLOCK_ANSWER_MARGIN = 0.05
# A lock whose release failed (Redis unreachable: a failover, a restart) would hold up every
# later request for its booking until it expires (LOCK_TTL_SECONDS), though Redis is
# usually back within seconds. Releasing is a compare-and-delete on our token, so trying
# again later is always safe: after these delays, in seconds (16 s in all).
RELEASE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_PENDING_RELEASES = 10_000


class BookingLocks:
    """The booking locks of one process: the Redis they live in, how long one lives, how
    long a wait may block there, and the releases to try again later."""

    def __init__(
        self,
        redis: RedisGateway,
        *,
        ttl: float,
        sleep: Callable[[float], None] = time.sleep,
        later: LaterReleases | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl * 1000)
        self.sleep = sleep
        self.later = LaterReleases() if later is None else later
        self._block_limit = (
            math.inf
            if redis.timeout is None
            else redis.timeout - BLOCK_OVERSHOOT - BLOCK_ANSWER_MARGIN
        )

    @classmethod
    def from_settings(cls, settings: Settings, redis: RedisGateway) -> BookingLocks:
        return cls(redis, ttl=settings.lock_ttl)

    def of(self, caller_id: str, booking_id: str, token: str | None = None) -> BookingLock:
        """The booking's lock as one request holds it; `token`: a given one (tests), else
        one drawn when first needed."""
        return BookingLock(self, caller_id, booking_id, token)

    def longest_block(self, within: float) -> float:
        """How long wait_for_release may be asked to block so that it ends within `within`
        seconds and its answer within the socket timeout; 0 or less: not at all."""
        return min(within - BLOCK_OVERSHOOT, self._block_limit)


class BookingLock:
    """One request's hold on one booking's lock, like redis-py's `Lock`: the token, taking
    the lock, waiting for its turn, letting go.

    Single flight (POST) reads the record between attempts, so it takes the steps itself:
    `for attempt in lock.attempts(wait): ... if lock.acquire(): ...`, then `release()`.
    PATCH and DELETE take the lock for a block: `with lock.held(wait):`.
    """

    def __init__(
        self, locks: BookingLocks, caller_id: str, booking_id: str, token: str | None = None
    ) -> None:
        self._locks = locks
        self._redis = locks.redis
        self.caller_id = caller_id
        self.booking_id = booking_id
        self._token = token

    @property
    def token(self) -> str:
        """Drawn when the request first tries to take the lock: a replay never does, and
        drawing one reads the OS's random source."""
        if self._token is None:
            self._token = secrets.token_hex(16)
        return self._token

    @property
    def drawn(self) -> bool:
        return self._token is not None

    @contextmanager
    def held(self, wait_seconds: float) -> Iterator[str]:
        """Hold the lock for the block (its token), waiting up to `wait_seconds` for it."""
        for _ in self.attempts(wait_seconds):
            if self.acquire():
                break
        try:
            yield self.token
        finally:
            self.release()

    def attempts(self, wait_seconds: float) -> Iterator[int]:
        """Yield the attempt number; in between, wait for this request's turn at the lock;
        BookingBusy once `wait_seconds` have passed."""
        deadline = time.monotonic() + wait_seconds
        attempt = 0
        while True:
            yield attempt
            attempt += 1
            if time.monotonic() >= deadline or not self.wait_for_turn(deadline):
                raise BookingBusy(
                    f"Another request for booking {self.booking_id!r} has held it for over "
                    f"{wait_seconds:g} s (it may still be talking to Microsoft Graph). Retry "
                    "the same request; it will return that meeting.",
                    retry_after=1,
                )

    def acquire(self) -> bool:
        """Take the lock with this request's token; False if another holds it."""
        name, token = keys.lock(self.caller_id, self.booking_id), self.token
        ttl_ms = self._locks.ttl_ms
        if self._redis.run(lambda: self._redis.client.set(name, token, nx=True, px=ttl_ms)):
            return True
        # redis-py sends a command again when its answer timed out (a stalled Redis). If
        # the first SET did land, the resent one was refused by our own lock: it is ours.
        return bool(self._redis.run(lambda: self._redis.client.get(name)) == token)

    def release(self) -> None:
        """Let go of the lock, if this request ever tried to take it, and wake the requests
        waiting for it; when Redis does not answer, again later (LaterReleases)."""
        if not self.drawn:
            return
        try:
            self.release_now()
        except StoreUnavailable:
            self._locks.later.add(self.release_now)

    def release_now(self) -> None:
        """Delete the lock if this token still holds it, and wake the requests waiting for
        it; StoreUnavailable when Redis does not answer."""
        names = [
            keys.lock(self.caller_id, self.booking_id),
            keys.waiting(self.caller_id, self.booking_id),
            keys.wake(self.caller_id, self.booking_id, self.token),
        ]
        args: list[str | int] = [self.token, keys.WAKE_TTL_MS]
        self._redis.run(lambda: self._redis.script(RELEASE_IF_OWNER)(keys=names, args=args))

    def locked(self) -> bool:
        name = keys.lock(self.caller_id, self.booking_id)
        return bool(self._redis.run(lambda: self._redis.client.exists(name)))

    def wait_for_turn(self, deadline: float) -> bool:
        """Wait until the lock is free, or its holder released or lost it (it expired and
        another may have taken it): True, worth another attempt. False once `deadline` (of
        time.monotonic()) has passed with the same holder."""
        # A span of its own (a no-op while tracing is off): a slow request's trace shows
        # how long it waited for another request's Graph call. Its Redis commands are its
        # children.
        with tracer.start_as_current_span("booking lock wait") as span:
            holder = self.holder_to_wait_for()
            while holder is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    span.set_attribute("mps.lock.outcome", "timed_out")
                    return False
                block = min(LONGEST_BLOCK, self._locks.longest_block(remaining))
                if block < SHORTEST_BLOCK:
                    self._locks.sleep(min(POLL, remaining))
                elif self.wait_for_release(holder, block):
                    span.set_attribute("mps.lock.outcome", "woken")
                    return True
                # Not woken: the holder still works, or died and its lock expired.
                if self.holder_to_wait_for() != holder:
                    span.set_attribute("mps.lock.outcome", "holder_changed")
                    return True
            span.set_attribute("mps.lock.outcome", "free")
            return True

    def holder_to_wait_for(self) -> str | None:
        """The token holding the lock, noting that a request waits for its release (which
        then wakes it); None when nobody holds the lock."""
        names = [
            keys.lock(self.caller_id, self.booking_id),
            keys.waiting(self.caller_id, self.booking_id),
        ]
        found = self._redis.run(
            lambda: self._redis.script(HOLDER_TO_WAIT_FOR)(keys=names, args=[keys.WAKE_TTL_MS])
        )
        return None if found is None else str(found)

    def wait_for_release(self, holder: str, seconds: float) -> bool:
        """Block until `holder` releases the lock, or about `seconds` (at most
        BookingLocks.longest_block) pass; True if it did (released before the call too)."""
        wake = keys.wake(self.caller_id, self.booking_id, holder)
        # Redis reads the timeout to the millisecond, and 0 would block for ever.
        block = max(0.001, round(seconds, 3))
        # Moving the list's one element from its end to its front leaves it there, for
        # every other request woken by the same release. BRPOPLPUSH rather than BLMOVE
        # (the same RIGHT to LEFT, deprecated for it since Redis 6.2 but kept): Azure Cache
        # for Redis 6 is Redis 6.0, the first to take a decimal timeout.
        moved = self._redis.run(lambda: self._redis.client.brpoplpush(wake, wake, block))
        return moved is not None


class LaterReleases:
    """Failed releases, tried again by one daemon thread per process (started on first
    use, so after gunicorn forks its workers) until they succeed or the delays run out;
    after that the lock expires by itself. Owned by the process's BookingLocks."""

    def __init__(
        self,
        delays: tuple[float, ...] = RELEASE_RETRY_DELAYS,
        most: int = MAX_PENDING_RELEASES,
    ) -> None:
        self.delays = delays
        self.most = most
        self._pending: list[tuple[float, int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, release: Callable[[], None], attempt: int = 0) -> None:
        """Call `release` after the delay of `attempt`, and again after the next one while
        it raises StoreUnavailable."""
        if attempt >= len(self.delays):
            return
        with self._changed:
            if len(self._pending) >= self.most:
                return  # a long outage: these locks expire by themselves
            due = time.monotonic() + self.delays[attempt]
            heapq.heappush(self._pending, (due, next(self._order), attempt, release))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lock-releases", daemon=True)
                self._thread.start()
            self._changed.notify()

    def pending(self) -> int:
        with self._changed:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending or self._pending[0][0] > time.monotonic():
                    timeout = self._pending[0][0] - time.monotonic() if self._pending else None
                    self._changed.wait(timeout)
                _, _, attempt, release = heapq.heappop(self._pending)
            try:
                release()
            except StoreUnavailable:
                self.add(release, attempt + 1)
            except Exception:  # never let one release end the thread for all others
                logger.exception("releasing a booking lock failed")
            else:
                logger.info("booking lock released after Redis came back")
