"""A per-process circuit breaker in front of Microsoft Graph.

During a sustained Graph outage every request would otherwise spend its whole retry
budget hammering Graph and holding a worker thread. After `threshold` consecutive failed
calls the circuit opens: calls are refused at once (the caller gets a fast 503 with
Retry-After) for `cooldown` seconds. Then one probe call at a time is let through
(half-open); its success closes the circuit, its failure opens it again.

A logical call counts once, however many attempts its retries make: a request that Graph
keeps failing for reasons of its own (one caller's odd input) must not open the circuit
for every caller of the instance. Only failures of different calls in a row do.

Hand-written (about 80 lines) rather than a library: pybreaker holds its lock for the
whole wrapped call, which would serialise every Graph call of a threaded worker
(danielfm/pybreaker#3, #55), and `circuitbreaker` has no locking at all
(fabfuel/circuitbreaker#61).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum

from service.foundation import metrics


class State(IntEnum):
    # The values are what the mps_graph_circuit_state gauge shows.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(Exception):
    """The circuit refuses calls for now; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, failures: int) -> None:
        super().__init__(f"circuit open for another {retry_after:.1f} s")
        self.retry_after = retry_after
        self.failures = failures


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        metrics.graph_circuit_state.set(State.CLOSED)

    @property
    def state(self) -> State:
        with self._lock:
            if self._state is State.OPEN and self._cooled_down():
                return State.HALF_OPEN
            return self._state

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        if not self.enabled:
            return
        with self._lock:
            if self._state is State.CLOSED:
                return
            if self._state is State.OPEN:
                if not self._cooled_down():
                    remaining = self._opened_at + self.cooldown - self.clock()
                    self._reject(remaining)
                self._set(State.HALF_OPEN)
            if self._probing:
                # One probe at a time: the others would only add load to a sick Graph.
                self._reject(1.0)
            self._probing = True

    def record_success(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._failures = 0
            self._probing = False
            if self._state is not State.CLOSED:
                self._set(State.CLOSED)

    def record_failure(self, *, retry: bool = False) -> None:
        """A failed attempt; `retry` when an earlier attempt of the same call already
        failed (then it does not count again, but still ends a half-open probe)."""
        if not self.enabled:
            return
        with self._lock:
            if not retry:
                self._failures += 1
            self._probing = False
            if self._state is State.HALF_OPEN or (
                self._state is State.CLOSED and self._failures >= self.threshold
            ):
                self._opened_at = self.clock()
                metrics.graph_circuit_opened.inc()
                self._set(State.OPEN)

    def _cooled_down(self) -> bool:
        return self.clock() >= self._opened_at + self.cooldown

    def _reject(self, retry_after: float) -> None:
        metrics.graph_circuit_rejections.inc()
        raise CircuitOpen(max(retry_after, 0.0), self._failures)

    def _set(self, state: State) -> None:
        self._state = state
        metrics.graph_circuit_state.set(state)
