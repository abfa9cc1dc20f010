"""How long to wait before retrying, inside one total time budget."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # Graph sends fractions too, e.g. "2.128"
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Budget:
    """A deadline for a whole operation, retries included, and the pacing of those retries.

    Delays grow exponentially with full jitter (AWS Architecture Blog, "Exponential Backoff
    and Jitter") unless the server named one with Retry-After, which always wins.
    """

    def __init__(
        self,
        seconds: float,
        *,
        base: float = 0.2,
        cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.deadline = clock() + seconds
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.attempt = 0

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def next_delay(self, retry_after: float | None) -> float:
        """The pause before the next attempt; the caller checks it fits in `remaining()`."""
        self.attempt += 1
        if retry_after is not None:
            return retry_after
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** (self.attempt - 1)))
