"""Every Redis key family, spelled exactly as a deployed Redis holds it (renaming one would
orphan what is stored there), and spelled only in service/storage/keys.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.cluster import key_slot

from service.storage import keys

pytestmark = pytest.mark.unit

SERVICE = Path(__file__).resolve().parents[2] / "service"
CALLER, BOOKING, ORGANIZER, APP = "booking-eu", "room-42:2026-11", "8b081ef6", "app-id"


def test_every_key_family_keeps_its_name():
    assert {
        "booking": keys.booking(CALLER, BOOKING),
        "lock": keys.lock(CALLER, BOOKING),
        "waiting": keys.waiting(CALLER, BOOKING),
        "wake": keys.wake(CALLER, BOOKING, "t1"),
        "legacy booking": keys.legacy_booking(CALLER, BOOKING),
        "quota": keys.quota_counter(ORGANIZER, "2026-11"),
        "legacy quota": keys.legacy_quota_counter(ORGANIZER, "2026-11"),
        "rate limit": keys.rate_limit(CALLER, 120, 60),
        "graph pace": keys.graph_pace(APP),
        "graph gate": keys.graph_gate(APP),
    } == {
        "booking": "mps:v1:booking:{booking-eu:room-42:2026-11}",
        "lock": "mps:v1:lock:{booking-eu:room-42:2026-11}",
        "waiting": "mps:v1:waiting:{booking-eu:room-42:2026-11}",
        "wake": "mps:v1:wake:{booking-eu:room-42:2026-11}:t1",
        "legacy booking": "mps:v1:booking:booking-eu:room-42:2026-11",
        "quota": "mps:v1:quota:{8b081ef6}:2026-11",
        "legacy quota": "mps:v1:quota:8b081ef6:2026-11",
        "rate limit": "mps:v1:ratelimit:{booking-eu}:120:60",
        "graph pace": "mps:v1:graph-pace:{app-id}",
        "graph gate": "mps:v1:graph-gate:{app-id}",
    }
    assert (keys.WAKE_TTL_MS, keys.COUNTER_TTL_SECONDS) == (5000, 40 * 24 * 3600)


def test_a_quota_scan_finds_counters_under_either_name():
    pattern = re.escape(keys.quota_counters_of("2026-11")).replace(r"\*", ".*")
    for counter, tagged in (
        (keys.quota_counter(ORGANIZER, "2026-11"), True),
        (keys.legacy_quota_counter(ORGANIZER, "2026-11"), False),
    ):
        assert re.fullmatch(pattern, counter)
        assert keys.organizer_of(counter, "2026-11") == (ORGANIZER, tagged)


def test_a_bookings_keys_share_its_slot():
    names = [
        keys.booking(CALLER, BOOKING),
        keys.lock(CALLER, BOOKING),
        keys.waiting(CALLER, BOOKING),
        keys.wake(CALLER, BOOKING, "t1"),
    ]
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_only_the_keys_module_spells_redis_keys():
    spelling = {
        str(path.relative_to(SERVICE))
        for path in SERVICE.rglob("*.py")
        if re.search(r"mps:v1|\bPREFIX\b", path.read_text())
    }
    assert spelling == {"storage/keys.py"}
