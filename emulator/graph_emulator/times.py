"""Graph's Edm.DateTimeOffset values, kept at .NET tick precision.

Graph echoes request times with up to seven fractional digits (100 ns ticks), e.g.
``2020-02-06T01:49:21.3524945Z``. Python's datetime stops at microseconds, so a
round trip through it would change the value a client sent. Times are therefore held
as integer ticks since the Unix epoch, which also makes "start + 1 h" exact.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

TICKS_PER_SECOND = 10_000_000
ONE_HOUR = 3600 * TICKS_PER_SECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# .NET's DateTimeOffset range in UTC: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.9999999Z.
MIN_TICKS = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * TICKS_PER_SECOND
MAX_TICKS = (
    int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds()) + 1
) * TICKS_PER_SECOND - 1

# The contract's Edm.DateTimeOffset pattern, with groups. The request body has already
# been validated against the contract, so this only has to split the parts out.
_DATETIME = re.compile(
    r"\A(?P<base>[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.](?P<fraction>[0-9]{1,12}))?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})\Z"  # \Z: `$` would allow a final newline
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
    return in_range(int(whole.timestamp()) * TICKS_PER_SECOND + int(fraction), value)


def in_range(ticks: int, what: str) -> int:
    """`ticks`, or ValueError if its UTC form is outside DateTimeOffset's years 1-9999
    (as for start + 1 h when the start is in the last hour of 9999)."""
    if not MIN_TICKS <= ticks <= MAX_TICKS:
        raise ValueError(
            f"'{what}' is out of range: the UTC date-time must be between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59.9999999Z"
        )
    return ticks


def format_utc(ticks: int) -> str:
    """Format ticks the way Graph does in responses: UTC, seven digits, ``Z``."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    whole = _EPOCH + timedelta(seconds=seconds)
    # Not %Y alone: glibc's strftime does not pad years before 1000 to four digits.
    return f"{whole.year:04d}-{whole:%m-%dT%H:%M:%S}.{fraction:07d}Z"


def now_ticks() -> int:
    """The current time in ticks (time.time_ns has 100 ns resolution or better)."""
    return time.time_ns() // 100


def inner_error_date() -> str:
    """The date in an error's innerError: UTC, seconds, no offset (as Graph sends it)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
