"""Graph's Edm.DateTimeOffset values, kept at .NET tick precision.

Graph echoes request times with up to seven fractional digits (100 ns ticks), e.g.
``2020-02-06T01:49:21.3524945Z``. Python's datetime stops at microseconds, so a
round trip through it would change the value a client sent. Times are therefore held
as integer ticks since the Unix epoch, which also makes "start + 1 h" exact.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

TICKS_PER_SECOND = 10_000_000
ONE_HOUR = 3600 * TICKS_PER_SECOND

# The contract's Edm.DateTimeOffset pattern, with groups. The request body has already
# been validated against the contract, so this only has to split the parts out.
_DATETIME = re.compile(
    r"^(?P<base>[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.](?P<fraction>[0-9]{1,12}))?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})$"
)


def parse(value: str) -> int:
    """Return the UTC tick count of an Edm.DateTimeOffset string.

    Digits past the seventh are truncated, as .NET does. Raises ValueError if the
    value is not a valid date-time.
    """
    match = _DATETIME.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a valid DateTimeOffset")
    offset = match["offset"]
    try:
        whole = datetime.fromisoformat(match["base"] + ("+00:00" if offset == "Z" else offset))
    except ValueError as exc:  # e.g. 30 February: matches the pattern, but no such day
        raise ValueError(f"'{value}' is not a valid DateTimeOffset: {exc}") from exc
    fraction = (match["fraction"] or "")[:7].ljust(7, "0")
    return int(whole.timestamp()) * TICKS_PER_SECOND + int(fraction)


def format_utc(ticks: int) -> str:
    """Format ticks the way Graph does in responses: UTC, seven digits, ``Z``."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    whole = datetime.fromtimestamp(seconds, UTC)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


def now_ticks() -> int:
    """The current time in ticks (time.time_ns has 100 ns resolution or better)."""
    return time.time_ns() // 100


def inner_error_date() -> str:
    """The date in an error's innerError: UTC, seconds, no offset (as Graph sends it)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
