"""Injected faults and rate limits: which request gets which failure.

This module only decides. The app applies the decision (sleeps, answers with an error
in the right shape, or drops the connection), so the rules stay testable on their own.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .operations import OPERATION_TARGETS, TARGETS


class FaultSpecError(ValueError):
    """An admin request described a fault or rate limit the emulator cannot apply."""


@dataclass(frozen=True)
class FaultAction:
    """What to do to one request."""

    status: int | None = None  # None: serve normally (after any latency)
    retry_after: str | None = None
    latency_ms: int = 0
    error_code: str | None = None
    message: str | None = None
    reset: bool = False  # drop the connection without any HTTP response
    after_processing: bool = False  # apply once the request has been handled


@dataclass
class _Fault:
    id: int
    target: str
    action: FaultAction
    remaining: int | None  # None: until cleared
    organizer_id: str | None

    def matches(self, operation: str, organizer_id: str | None) -> bool:
        if self.remaining == 0 or self.target not in OPERATION_TARGETS[operation]:
            return False
        return self.organizer_id is None or self.organizer_id == (organizer_id or "").lower()


class FaultPlan:
    """Faults in the order they were added, plus per-target sliding-window rate limits."""

    def __init__(self, lock: threading.RLock, clock: Any = time.monotonic) -> None:
        self._lock = lock
        self._clock = clock
        self._ids = itertools.count(1)
        self._faults: list[_Fault] = []
        self._limits: dict[str, int] = {}
        self._windows: dict[str, deque[float]] = {}

    def add(self, spec: dict[str, Any]) -> int:
        """Add a fault described by the admin API's JSON; return its id."""
        fault = _parse_fault(spec)
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault.id

    def set_rate_limit(self, target: str, per_second: int | None) -> None:
        if target not in TARGETS:
            raise FaultSpecError(f"target must be one of {sorted(TARGETS)}")
        if per_second is not None and (
            not isinstance(per_second, int) or isinstance(per_second, bool) or per_second < 1
        ):
            raise FaultSpecError("perSecond must be a positive integer or null")
        with self._lock:
            self._windows.pop(target, None)
            if per_second is None:
                self._limits.pop(target, None)
            else:
                self._limits[target] = per_second

    def clear(self) -> None:
        """Remove every fault and rate limit."""
        with self._lock:
            self._faults.clear()
            self._limits.clear()
            self._windows.clear()

    def decide(self, operation: str, organizer_id: str | None = None) -> FaultAction | None:
        """Consume the first matching fault, else apply the rate limits; None = no fault."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(operation, organizer_id):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.action
            return self._throttle(operation)

    def _throttle(self, operation: str) -> FaultAction | None:
        limited = [t for t in OPERATION_TARGETS[operation] if t in self._limits]
        if not limited:
            return None
        now = self._clock()
        for target in limited:
            window = self._windows.setdefault(target, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self._limits[target]:
                # Throttled calls do not count against the window, as with Graph:
                # only served requests use up the budget.
                return FaultAction(status=429, retry_after="1")
        for target in limited:
            self._windows[target].append(now)
        return None


def _parse_fault(spec: dict[str, Any]) -> _Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("the fault must be a JSON object")
    target = spec.get("target")
    if target not in TARGETS:
        raise FaultSpecError(f"target must be one of {sorted(TARGETS)}")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("status must be an integer from 400 to 599")
    latency = spec.get("latencyMs", 0)
    if not isinstance(latency, int) or isinstance(latency, bool) or not 0 <= latency <= 600_000:
        raise FaultSpecError("latencyMs must be an integer from 0 to 600000")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FaultSpecError("count must be a positive integer (omit it for 'until cleared')")
    retry_after = spec.get("retryAfter")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        retry_after = str(retry_after)
    if retry_after is not None and not isinstance(retry_after, str):
        raise FaultSpecError("retryAfter must be a string: seconds or an HTTP-date")
    reset = spec.get("reset", False)
    after = spec.get("afterProcessing", False)
    if not isinstance(reset, bool) or not isinstance(after, bool):
        raise FaultSpecError("reset and afterProcessing must be true or false")
    if status is None and not reset and not latency:
        raise FaultSpecError("a fault needs a status, reset: true or a latencyMs")
    organizer = spec.get("organizerId")
    if organizer is not None and not isinstance(organizer, str):
        raise FaultSpecError("organizerId must be a string")
    for key in ("errorCode", "message"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise FaultSpecError(f"{key} must be a string")
    action = FaultAction(
        status=status,
        retry_after=retry_after,
        latency_ms=latency,
        error_code=spec.get("errorCode"),
        message=spec.get("message"),
        reset=reset,
        after_processing=after,
    )
    return _Fault(
        id=0,
        target=target,
        action=action,
        remaining=count,
        organizer_id=organizer.lower() if organizer else None,
    )
