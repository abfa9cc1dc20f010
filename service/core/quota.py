"""Meetings per organizer per calendar month (UTC), against Graph's limit of 2,000.

Graph fails createOrGet once an organizer has reached its monthly limit; counting here
lets the service refuse with a clear 429 before that, show usage, and spread pool bookings
over the organizer with the most room. The count covers meetings this service created
(Graph answered 201); meetings made by other means are not seen, so set the limit below
2,000 if organizers also create meetings elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from redis.cluster import RedisCluster

from service.foundation import metrics
from service.foundation.errors import QuotaExhausted, StoreUnavailable
from service.storage import keys
from service.storage.gateway import RedisGateway

logger = logging.getLogger(__name__)

# Count one more meeting for an organizer this month unless that would pass the limit:
# check and increment in one step, so concurrent requests cannot both take the last one.
# ARGV[3] is the month's count under the name used before hash tags: a new counter starts
# from it, so an upgrade does not hand out the month's meetings again.
RESERVE_UNDER_LIMIT = """
if redis.call('exists', KEYS[1]) == 0 and tonumber(ARGV[3]) > 0 then
    redis.call('set', KEYS[1], ARGV[3], 'EX', ARGV[2])
end
local created = redis.call('incr', KEYS[1])
if created == 1 then
    redis.call('expire', KEYS[1], ARGV[2])
end
if created > tonumber(ARGV[1]) then
    redis.call('decr', KEYS[1])
    return -1
end
return created
"""


class MonthlyCounters:
    """Meetings created per organizer and UTC month, as counters in the service's Redis
    (so every replica counts together)."""

    def __init__(self, redis: RedisGateway) -> None:
        self.redis = redis

    def reserve(self, organizer_id: str, month: str, limit: int) -> int | None:
        """Count a meeting for the organizer's month; the new count, or None at the limit."""

        def count() -> int:
            client = self.redis.client
            # Only read while the new counter does not exist yet, by the script; one GET per
            # meeting about to be created is nothing next to the Graph call it precedes.
            seed = client.get(keys.legacy_quota_counter(organizer_id, month)) or 0
            created = self.redis.script(RESERVE_UNDER_LIMIT)(
                keys=[keys.quota_counter(organizer_id, month)],
                args=[limit, keys.COUNTER_TTL_SECONDS, int(str(seed))],
            )
            return int(str(created))

        created = self.redis.run(count)
        return None if created < 0 else created

    def unreserve(self, organizer_id: str, month: str) -> None:
        self.redis.run(lambda: self.redis.client.decr(keys.quota_counter(organizer_id, month)))

    def created(self, organizer_ids: list[str], month: str) -> list[int]:
        """Each organizer's count; one pipeline, split by redis-py per cluster node (a
        cross-slot MGET would be refused by a cluster)."""

        def read() -> list[int]:
            pipe = self.redis.client.pipeline(transaction=False)
            for organizer_id in organizer_ids:
                pipe.get(keys.quota_counter(organizer_id, month))
                pipe.get(keys.legacy_quota_counter(organizer_id, month))
            values = pipe.execute()
            return [
                int(new if new is not None else (old or 0))
                for new, old in zip(values[::2], values[1::2], strict=True)
            ]

        return self.redis.run(read)

    def created_in(self, month: str, most: int = 10_000) -> dict[str, int]:
        """Every organizer's count for a month (for /metrics), from every primary of a
        cluster; at most `most` counters."""

        def scan() -> dict[str, int]:
            client = self.redis.client
            # A cluster's SCAN runs on the nodes named; each primary holds its own slots.
            where = (
                {"target_nodes": RedisCluster.PRIMARIES} if isinstance(client, RedisCluster) else {}
            )
            names: list[str] = []
            for found in client.scan_iter(match=keys.quota_counters_of(month), count=500, **where):
                names.append(str(found))
                if len(names) >= most:
                    break
            pipe = client.pipeline(transaction=False)
            for found in names:
                pipe.get(found)
            values = pipe.execute() if names else []
            counts: dict[str, int] = {}
            legacy: dict[str, int] = {}
            for found, value in zip(names, values, strict=True):
                organizer, tagged = keys.organizer_of(found, month)
                (counts if tagged else legacy)[organizer] = int(value or 0)
            # A counter not yet carried over from its old name still counts.
            return {**legacy, **counts}

        return self.redis.run(scan)


@dataclass(frozen=True)
class Usage:
    organizer_id: str
    month: str
    created: int
    limit: int


class Reservation:
    """One meeting counted ahead of the Graph call; `keep()` once Graph created it."""

    def __init__(self) -> None:
        self.kept = False

    def keep(self) -> None:
        self.kept = True


class OrganizerQuota:
    def __init__(
        self,
        redis: RedisGateway,
        limit: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.counters = MonthlyCounters(redis)
        self.limit = limit  # 0: no limit
        self.clock = clock

    def month(self) -> str:
        return self.clock().strftime("%Y-%m")

    def usage(self, organizer_id: str) -> Usage:
        month = self.month()
        [created] = self.counters.created([organizer_id], month)
        return Usage(organizer_id, month, created, self.limit)

    def least_used(self, organizer_ids: list[str]) -> str:
        """The organizer with the most room left this month (the first one on a tie)."""
        counts = self.counters.created(organizer_ids, self.month())
        return min(zip(organizer_ids, counts, strict=True), key=lambda pair: pair[1])[0]

    @contextmanager
    def reserve(self, organizer_id: str) -> Iterator[Reservation]:
        """Count a meeting before calling Graph, so concurrent requests cannot overshoot;
        handed back unless the caller keeps it (Graph created the meeting)."""
        month = self.month()
        reservation = Reservation()
        counted = False
        if self.limit:
            try:
                created = self.counters.reserve(organizer_id, month, self.limit)
            except StoreUnavailable:
                # Neither counted nor refused while Redis is away (Graph's own limit still
                # holds); failing here would only push the request onto the degraded path.
                logger.warning("quota not checked: the store is unavailable")
            else:
                if created is None:
                    metrics.quota_rejections.inc()
                    raise QuotaExhausted(
                        f"Organizer {organizer_id} has reached this service's limit of "
                        f"{self.limit} meetings in {month} (UTC); Microsoft Graph allows 2,000 "
                        "per organizer per month. Book with another organizer, or retry next "
                        "month.",
                        organizer_id=organizer_id,
                        month=month,
                        created=self.limit,
                        limit=self.limit,
                        retry_after=self._seconds_to_next_month(),
                    )
                counted = True
        try:
            yield reservation
        finally:
            if counted and not reservation.kept:
                try:
                    self.counters.unreserve(organizer_id, month)
                except StoreUnavailable:
                    logger.warning("quota reservation not handed back: store unavailable")

    def _seconds_to_next_month(self) -> int:
        now = self.clock()
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else (first.replace(month=first.month + 1))
        )
        return max(1, int((following - now).total_seconds()))


class QuotaCollector:
    """Prometheus collector for /metrics: each organizer's meetings this month and the
    limit, read from Redis at scrape time.

    Redis holds the truth for all replicas, and reading it when scraped means the month's
    turn shows at once; a gauge set when a meeting is created would keep last month's
    count until that organizer's next meeting.
    """

    def __init__(self, quota: OrganizerQuota) -> None:
        self.quota = quota

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(*metrics.ORGANIZER_MONTHLY_LIMIT, value=self.quota.limit)
        try:
            counts = self.quota.counters.created_in(self.quota.month())
        except StoreUnavailable:
            return  # mps_redis_up already says why
        family = GaugeMetricFamily(*metrics.ORGANIZER_MEETINGS_MONTH, labels=["organizer"])
        for organizer_id, created in sorted(counts.items()):
            family.add_metric([organizer_id], created)
        yield family
