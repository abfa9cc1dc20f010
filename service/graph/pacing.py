"""One pace and one throttle gate for all of this app's Graph calls, shared in Redis.

Graph's limits are per app, while this service runs as many workers and replicas, each
with its own threads: left alone, every thread finds a limit by drawing its own 429 and
sleeping a whole Retry-After, and the app's rate collapses to a fraction of the limit.
Two shared records in Redis, under one hash tag per app (its client id), avoid that:

- The pace (GRAPH_RATE_LIMIT, optional): a generic cell rate algorithm ("virtual
  scheduling", ITU-T I.371) in one Lua script. It keeps the app's theoretical arrival
  time (TAT), the earliest moment the next call may be sent, and gives each call the
  next free moment: `start = max(now, tat); tat = start + 1/rate`. Calls of every worker
  and replica are spaced evenly, 1/rate apart, without a burst.
- The gate (always): when Graph answers 429 or 503 with Retry-After, the moment it named
  is written for everyone, so every other call waits until then instead of drawing its
  own 429. The gate only moves forwards.

Times are Redis's own (TIME inside the scripts), so replicas' clocks do not matter. A
call whose wait would not fit its remaining budget reserves nothing and is refused
(`Refused`); the Graph client answers it as an exhausted budget (503 with Retry-After).
When Redis is unavailable the call is sent unpaced: pacing is an optimisation, and a
call must never fail because of it (counted in mps_graph_pacing_total{outcome="unpaced"}).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from service.config import Settings
from service.foundation import metrics
from service.foundation.backoff import Budget
from service.foundation.errors import StoreUnavailable
from service.storage import keys
from service.storage.gateway import STORE_RETRY_AFTER, RedisGateway

logger = logging.getLogger(__name__)

tracer = trace.get_tracer(__name__)

MICROSECONDS = 1_000_000
# How often, at most, a worker logs that it sends unpaced because Redis is unavailable.
UNPACED_LOG_INTERVAL = 60.0
# After the pacer's Redis failed, how long a worker sends unpaced without asking it again:
# a stalled Redis costs a command its whole timeout (and redis-py's one retry), which must
# not be added to every Graph call while it lasts.
UNAVAILABLE_PAUSE = 1.0

# KEYS[1]: the pace's TAT, KEYS[2]: the gate, both in microseconds of Redis's TIME.
# ARGV[1]: the interval between calls in microseconds (0: no pace, the gate only);
# ARGV[2]: the longest wait the call accepts, in microseconds.
# Returns {admitted (1 or 0), wait in microseconds, 1 if the gate decided the wait}.
# A refused call writes nothing: it must not push later calls back. The TAT lives only
# as long as it is in the future (plus a second), so an idle app leaves nothing behind.
TAKE_TURN = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local gate = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(now, gate)
local gated = 0
if gate > now then gated = 1 end
local interval = tonumber(ARGV[1])
if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
    if tat > start then
        start = tat
        gated = 0
    end
end
local wait = start - now
if wait > tonumber(ARGV[2]) then
    return {0, wait, gated}
end
if interval > 0 then
    local tat = start + interval
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX',
        math.ceil((tat - now) / 1000) + 1000)
end
return {1, wait, gated}
"""
# KEYS[1]: the gate. ARGV[1]: how long Graph asked us to wait, in microseconds. The gate
# moves only forwards (a shorter Retry-After never shortens a longer one) and expires
# when it opens.
CLOSE_GATE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local until_ = now + tonumber(ARGV[1])
local gate = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ <= gate then
    return 0
end
redis.call('SET', KEYS[1], string.format('%d', until_), 'PX',
    math.max(1, math.ceil((until_ - now) / 1000)))
return 1
"""


@dataclass(frozen=True)
class Turn:
    admitted: bool
    wait: float  # seconds until the call may be sent
    gated: bool  # the gate (Graph's Retry-After), not the pace, decided the wait


class Refused(Exception):
    """The call's turn comes later than its budget allows; nothing was reserved."""

    def __init__(self, wait: float, gated: bool) -> None:
        super().__init__(f"next turn in {wait:.3f} s")
        self.wait = wait
        self.gated = gated


class GraphPacer:
    def __init__(
        self,
        redis: RedisGateway,
        client_id: str,
        *,
        interval: float | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`interval`: seconds between two calls of the app (None: the gate only)."""
        self.redis = redis
        self.keys = [keys.graph_pace(client_id), keys.graph_gate(client_id)]
        self.interval_us = 0 if interval is None else max(1, round(interval * MICROSECONDS))
        self.sleep = sleep
        self.clock = clock
        self._last_unpaced_log = -math.inf
        self._log_lock = threading.Lock()
        self._unavailable_until = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings, redis: RedisGateway) -> GraphPacer:
        return cls(redis, settings.client_id, interval=settings.graph_send_interval)

    @property
    def paces(self) -> bool:
        return self.interval_us > 0

    def take_turn(self, budget: Budget) -> None:
        """Wait for this call's turn, then return: the call may be sent. Raises Refused
        when the turn would come after the budget ends."""
        turn = self.reserve(budget.remaining())
        if turn is None:
            return
        if not turn.admitted:
            metrics.graph_pacing.labels(outcome="refused").inc()
            raise Refused(turn.wait, turn.gated)
        metrics.graph_pacing.labels(outcome="gated" if turn.gated else "paced").inc()
        metrics.graph_pacing_wait.observe(turn.wait)
        if turn.wait > 0:
            # A span (a no-op while tracing is off), so a slow request's trace shows the
            # time it waited for the app's turn before its Graph attempt.
            with tracer.start_as_current_span("graph pacing wait") as span:
                span.set_attribute("mps.pacing.wait_seconds", turn.wait)
                span.set_attribute("mps.pacing.gated", turn.gated)
                self.sleep(turn.wait)

    def reserve(self, longest_wait: float) -> Turn | None:
        """The call's turn, reserved if it comes within `longest_wait` seconds; None when
        Redis is unavailable (the call goes unpaced)."""
        args = [self.interval_us, max(0, math.floor(longest_wait * MICROSECONDS))]
        try:
            admitted, wait, gated = self._run(
                lambda: self.redis.script(TAKE_TURN)(keys=self.keys, args=args)
            )
        except StoreUnavailable:
            # Degrade, never fail: the gate and the pace spare Graph and our budgets, but
            # Graph and the retry loop still work without them.
            metrics.graph_pacing.labels(outcome="unpaced").inc()
            self._log_unpaced()
            return None
        return Turn(bool(admitted), int(wait) / MICROSECONDS, bool(gated))

    def _run(self, operation: Callable[[], Any]) -> Any:
        """The gateway's `run`, skipped (StoreUnavailable at once) for UNAVAILABLE_PAUSE after
        it failed."""
        if self.clock() < self._unavailable_until:
            raise StoreUnavailable("The pacer's Redis is unavailable.", STORE_RETRY_AFTER)
        try:
            return self.redis.run(operation)
        except StoreUnavailable:
            self._unavailable_until = self.clock() + UNAVAILABLE_PAUSE
            raise

    def close_gate(self, seconds: float) -> None:
        """Graph asked us to wait `seconds` (Retry-After): every call of the app waits."""
        microseconds = math.ceil(seconds * MICROSECONDS)
        if microseconds <= 0:
            return
        try:
            moved = self._run(
                lambda: self.redis.script(CLOSE_GATE)(keys=self.keys[1:], args=[microseconds])
            )
        except StoreUnavailable:
            # This call still waits its own Retry-After in the retry loop; only the others
            # will each find the throttling by themselves.
            return
        if moved:
            metrics.graph_gate_closed.inc()

    def _log_unpaced(self) -> None:
        with self._log_lock:
            now = self.clock()
            if now - self._last_unpaced_log < UNPACED_LOG_INTERVAL:
                return
            self._last_unpaced_log = now
        logger.warning("graph calls sent unpaced: the pacer's Redis is unavailable")
