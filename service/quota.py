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

from service import metrics
from service.errors import QuotaExhausted, StoreUnavailable
from service.store import BookingStore

logger = logging.getLogger(__name__)


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
        store: BookingStore,
        limit: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.limit = limit  # 0: no limit
        self.clock = clock

    def month(self) -> str:
        return self.clock().strftime("%Y-%m")

    def usage(self, organizer_id: str) -> Usage:
        month = self.month()
        [created] = self.store.meetings_created([organizer_id], month)
        return Usage(organizer_id, month, created, self.limit)

    def least_used(self, organizer_ids: list[str]) -> str:
        """The organizer with the most room left this month (the first one on a tie)."""
        counts = self.store.meetings_created(organizer_ids, self.month())
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
                created = self.store.reserve_meeting(organizer_id, month, self.limit)
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
                    self.store.unreserve_meeting(organizer_id, month)
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
            counts = self.quota.store.meetings_created_in(self.quota.month())
        except StoreUnavailable:
            return  # mps_redis_up already says why
        family = GaugeMetricFamily(*metrics.ORGANIZER_MEETINGS_MONTH, labels=["organizer"])
        for organizer_id, created in sorted(counts.items()):
            family.add_metric([organizer_id], created)
        yield family
