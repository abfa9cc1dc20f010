"""Every Redis key the service reads or writes, spelled here and nowhere else.

All live under one prefix (an ACL user may be limited to it). Each family carries a Redis
Cluster hash tag: a key's slot is computed from the text between its first `{` and the
next `}`, so the keys one Lua script or one booking touches together share a slot (one
primary, failing over together). Renaming a key here orphans what a deployed Redis holds
under the old name: the names of releases before hash tags (`legacy_*`) are still read.
"""

from __future__ import annotations

PREFIX = "mps:v1"

# How long a waiting mark and a wake list live: far longer than one block and the look
# that follows it, short enough to leave nothing behind.
WAKE_TTL_MS = 5000
# A month's quota counter outlives the month by a few days, for the usage endpoint's last
# look.
COUNTER_TTL_SECONDS = 40 * 24 * 3600

QUOTA_PREFIX = f"{PREFIX}:quota:"


# --- a booking: its record, its lock and the waiting for it, in one slot -------------------


def _of_booking(kind: str, caller_id: str, booking_id: str) -> str:
    """`{caller:booking}` is the booking's hash tag. Neither caller ids nor booking ids can
    contain `{` or `}` (service.domain.callers, service.web.schemas), so the tag is exactly
    caller:booking, and caller ids cannot contain ':', so it is unambiguous even though
    booking ids can."""
    return f"{PREFIX}:{kind}:{{{caller_id}:{booking_id}}}"


def booking(caller_id: str, booking_id: str) -> str:
    """The booking's record (service.storage.store), for BOOKING_TTL_SECONDS."""
    return _of_booking("booking", caller_id, booking_id)


def lock(caller_id: str, booking_id: str) -> str:
    """The booking's single-flight lock: its holder's token, for LOCK_TTL_SECONDS."""
    return _of_booking("lock", caller_id, booking_id)


def waiting(caller_id: str, booking_id: str) -> str:
    """The mark that a request waits for the booking's lock (service.storage.booking_lock),
    for WAKE_TTL_MS."""
    return _of_booking("waiting", caller_id, booking_id)


def wake(caller_id: str, booking_id: str, token: str) -> str:
    """The list the release of the booking's lock held with `token` wakes its waiters by:
    one per token, so a release never wakes (or lets spin) those waiting on a later holder;
    in the booking's hash slot, so the release script may touch it with the lock."""
    return f"{_of_booking('wake', caller_id, booking_id)}:{token}"


def legacy_booking(caller_id: str, booking_id: str) -> str:
    """The record's name in releases before hash tags (`mps:v1:booking:<caller>:<booking>`).

    Records written under it are still read (see BookingStore.get) and are never written
    again; they expire after BOOKING_TTL_SECONDS, after which this fallback can go.
    """
    return f"{PREFIX}:booking:{caller_id}:{booking_id}"


# --- an organizer's monthly quota (service.core.quota) ------------------------------------


def quota_counter(organizer_id: str, month: str) -> str:
    """`{organizer}` is the hash tag: an organizer's counters share one slot. Lives
    COUNTER_TTL_SECONDS."""
    return f"{QUOTA_PREFIX}{{{organizer_id}}}:{month}"


def legacy_quota_counter(organizer_id: str, month: str) -> str:
    """The name before hash tags; still read (see MonthlyCounters) until such counters
    expire, COUNTER_TTL_SECONDS after the upgrade."""
    return f"{QUOTA_PREFIX}{organizer_id}:{month}"


def quota_counters_of(month: str) -> str:
    """A SCAN pattern matching every organizer's counter of `month`, under either name."""
    return f"{QUOTA_PREFIX}*:{month}"


def organizer_of(counter: str, month: str) -> tuple[str, bool]:
    """(organizer id, written under the hash-tagged name) of a counter key of `month`."""
    organizer = counter[len(QUOTA_PREFIX) : -len(f":{month}")]
    tagged = organizer.startswith("{") and organizer.endswith("}")
    return (organizer[1:-1] if tagged else organizer), tagged


# --- a caller's rate limit (service.core.rate_limits) -------------------------------------


def rate_limit(caller_id: str, amount: int, window_seconds: int) -> str:
    """The caller's request counter in its current window (which is the key's TTL); the
    caller is the hash tag."""
    return f"{PREFIX}:ratelimit:{{{caller_id}}}:{amount}:{window_seconds}"


# --- the app's Graph pace and throttle gate (service.graph.pacing) -------------------------


def graph_pace(client_id: str) -> str:
    """The app's TAT. `{client id}` is the hash tag: pace and gate share a slot, so one
    script may use both."""
    return f"{PREFIX}:graph-pace:{{{client_id}}}"


def graph_gate(client_id: str) -> str:
    """Until when Graph throttles the app (Retry-After of its last 429 or 503)."""
    return f"{PREFIX}:graph-gate:{{{client_id}}}"


# --- what a key may tell outside the store --------------------------------------------------

# Every family above: the one part of a key that traces may show (service.storage.redis_spans).
FAMILIES = frozenset(
    {"booking", "lock", "waiting", "wake", "quota", "ratelimit", "graph-pace", "graph-gate"}
)


def family_of(key: object) -> str | None:
    """The family of one of the service's keys (`mps:v1:<family>:...`), e.g. "booking";
    None for anything else. Never more of the key: the rest holds caller, booking and
    organizer ids."""
    if isinstance(key, bytes):
        # A value may be a whole record: only the head that could name a family is read.
        key = key[:64].decode("utf-8", "replace")
    if not isinstance(key, str) or not key.startswith(f"{PREFIX}:"):
        return None
    family = key[len(PREFIX) + 1 :].split(":", 1)[0]
    return family if family in FAMILIES else None
