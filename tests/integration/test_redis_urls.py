"""REDIS_URL's forms, the cluster slot rule for every key family and Lua script, the store
and the quota on a real 6-node Redis Cluster, and records written under the key names of
releases before hash tags."""

from __future__ import annotations

import concurrent.futures
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from redis.cluster import key_slot

from service.config import ConfigError, Settings, parse_redis_url
from service.core import quota
from service.core.quota import MonthlyCounters
from service.domain.record import BookingRecord, Status
from service.storage import booking_lock, keys, redis_client
from service.storage.booking_lock import BookingLocks
from service.storage.gateway import RedisGateway
from service.storage.store import BookingStore
from tests.support.redis_topologies import Cluster, TlsRedis

pytestmark = pytest.mark.integration

ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
SECRET = "pa:ss/w@rd"


# --- REDIS_URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "topology", "tls", "nodes", "service", "db"),
    [
        ("redis://127.0.0.1:6379/0", "single", False, (), None, 0),
        ("rediss://:k@cache.example:6380/0", "single", True, (), None, 0),
        ("unix:///run/redis.sock", "single", False, (), None, 0),
        (
            "redis+cluster://a:7000,b:7001,[::1]:7002",
            "cluster",
            False,
            (("a", 7000), ("b", 7001), ("::1", 7002)),
            None,
            0,
        ),
        ("rediss+cluster://u:p@c.example:10000", "cluster", True, (("c.example", 10000),), None, 0),
        ("redis+cluster://a", "cluster", False, (("a", 6379),), None, 0),
        (
            "redis+sentinel://s1:26379,s2/mymaster",
            "sentinel",
            False,
            (("s1", 26379), ("s2", 26379)),
            "mymaster",
            0,
        ),
        (
            "rediss+sentinel://u:p@s1:5000/mymaster/3",
            "sentinel",
            True,
            (("s1", 5000),),
            "mymaster",
            3,
        ),
    ],
)
def test_every_url_form(url, topology, tls, nodes, service, db):
    target = parse_redis_url(url)
    assert (target.topology, target.tls, target.nodes) == (topology, tls, nodes)
    assert (target.service_name, target.db) == (service, db)


def test_credentials_are_percent_decoded_and_never_shown():
    target = parse_redis_url("rediss+cluster://mps:pa%3Ass%2Fw%40rd@h:1")
    assert (target.username, target.password) == ("mps", SECRET)
    assert SECRET not in repr(target) and "pa%3Ass" not in repr(target)


def env_with(tmp_path: Path, **variables: str) -> dict[str, str]:
    clients = tmp_path / "clients.json"
    clients.write_text(
        '{"clients": [{"id": "a", "keySha256": "' + "0" * 64 + '", "organizers": ["*"]}]}'
    )
    return {
        "AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "AZURE_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
        "AZURE_CLIENT_SECRET": "s",
        "CLIENTS_FILE": str(clients),
        **variables,
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("cache.example:6379", "is not a URL"),
        ("http://u:pa%3Ass%2Fw%40rd@h:1/0", "unknown scheme 'http'"),
        ("redis+sentinel://u:pa%3Ass%2Fw%40rd@s1:26379", "names no Sentinel service"),
        ("redis+sentinel://u:pa%3Ass%2Fw%40rd@s1/m/x", "/<service-name>/<db number>"),
        ("redis+cluster://u:pa%3Ass%2Fw%40rd@h:1/2", "only database 0"),
        ("redis+cluster://u:pa%3Ass%2Fw%40rd@h:99999", "invalid port"),
        ("redis://u:pa%3Ass%2Fw%40rd@h:1,h:2/0", "redis+cluster://"),
        ("redis+cluster://u:pa%3Ass%2Fw%40rd@,h:1", "empty host"),
    ],
)
def test_a_bad_url_stops_the_start_naming_redis_url_without_the_password(tmp_path, url, problem):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env_with(tmp_path, REDIS_URL=url))
    [message] = [p for p in raised.value.problems if "REDIS_URL" in p]
    assert message.startswith("REDIS_URL ") and problem in message, message
    assert "pa%3Ass" not in str(raised.value) and "pa:ss" not in str(raised.value)


def test_tls_files_need_a_tls_url_and_come_in_pairs(tmp_path):
    pem = tmp_path / "x.pem"
    pem.write_text("x")
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            env_with(
                tmp_path,
                REDIS_URL="redis://h:1/0",
                REDIS_CA_BUNDLE=str(pem),
                REDIS_CLIENT_CERT=str(pem),
            )  # fmt: skip
        )
    text = str(raised.value)
    assert "need a TLS REDIS_URL" in text
    assert "set both REDIS_CLIENT_CERT and REDIS_CLIENT_KEY" in text
    settings = Settings.from_env(
        env_with(tmp_path, REDIS_URL="rediss+cluster://h:1", REDIS_CA_BUNDLE=str(pem))
    )
    assert settings.redis.ca_bundle == pem and settings.redis.topology == "cluster"
    assert redis_client.tls_options(settings.redis)["ssl_ca_certs"] == str(pem)


# --- one slot per script call and key family ---------------------------------------------

SCRIPTS = {
    "release-if-owner": (
        booking_lock.RELEASE_IF_OWNER,
        [
            keys.lock("booking-eu", "room:1:x"),
            keys.waiting("booking-eu", "room:1:x"),
            keys.wake("booking-eu", "room:1:x", "token"),
        ],
    ),
    "holder-to-wait-for": (
        booking_lock.HOLDER_TO_WAIT_FOR,
        [keys.lock("booking-eu", "room:1:x"), keys.waiting("booking-eu", "room:1:x")],
    ),
    "reserve-under-limit": (quota.RESERVE_UNDER_LIMIT, [keys.quota_counter(ORGANIZER, "2026-11")]),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_names_its_keys_in_keys_and_touches_one_slot(name):
    source, names = SCRIPTS[name]
    # Every key a redis.call touches is KEYS[n]: no key is spelled or built in Lua.
    calls = re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", source)
    assert calls and all(re.fullmatch(r"KEYS\[\d+\]", target) for _, target in calls), calls
    used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", source)}
    assert used == set(range(1, len(names) + 1))
    assert len({key_slot(k.encode()) for k in names}) == 1


@pytest.mark.parametrize(
    ("caller", "booking_id"),
    [("booking-eu", "b-1"), ("rooms", "room-42:2026-11-23T09:00"), ("a.b_c-d", "x~y.z_:-:")],
)
def test_a_bookings_keys_share_a_slot(caller, booking_id):
    booking, lock = keys.booking(caller, booking_id), keys.lock(caller, booking_id)
    assert booking == f"mps:v1:booking:{{{caller}:{booking_id}}}"
    assert key_slot(booking.encode()) == key_slot(lock.encode())
    for other in (keys.waiting(caller, booking_id), keys.wake(caller, booking_id, "t")):
        assert key_slot(booking.encode()) == key_slot(other.encode())
    assert key_slot(booking.encode()) == key_slot(f"{caller}:{booking_id}".encode())


def test_an_organizers_counters_share_a_slot():
    months = [keys.quota_counter(ORGANIZER, month) for month in ("2026-11", "2026-12", "2027-01")]
    assert len({key_slot(k.encode()) for k in months}) == 1
    assert months[0] == f"mps:v1:quota:{{{ORGANIZER}}}:2026-11"


# --- on a real Redis Cluster -------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    found = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield found
    found.stop()


@pytest.fixture
def cluster_redis(cluster):
    target = parse_redis_url(cluster.url)
    return RedisGateway(lambda: redis_client.build(target, 0.5), timeout=0.5)


@pytest.fixture
def cluster_store(cluster_redis):
    return BookingStore(cluster_redis, ttl_seconds=60)


@pytest.fixture
def cluster_locks(cluster_redis):
    return BookingLocks(cluster_redis, ttl=5)


def record(booking_id: str) -> BookingRecord:
    return BookingRecord.provisioned(
        booking_id=booking_id,
        generation=0,
        external_id="0b5c6e0e-36a4-5b5f-9a55-5a3b1d7c2e10",
        organizer_id=ORGANIZER,
        request={"subject": "s"},
        meeting={"id": "m"},
        graph_request_id=None,
    )


def test_the_servers_keyslot_agrees(cluster):
    with cluster.nodes[0].client() as client:
        for name in (
            keys.booking("eu", "a:b"),
            keys.lock("eu", "a:b"),
            keys.quota_counter(ORGANIZER, "2026-11"),
        ):
            assert client.execute_command("CLUSTER", "KEYSLOT", name) == key_slot(name.encode())


def test_records_locks_and_scripts_on_a_cluster(cluster_redis, cluster_store, cluster_locks):
    ids = [f"b-{n}" for n in range(30)]  # spread over every primary
    for booking_id in ids:
        cluster_store.put("eu", booking_id, record(booking_id))
        first, second = (
            cluster_locks.of("eu", booking_id, "t1"),
            cluster_locks.of("eu", booking_id, "t2"),
        )
        assert first.acquire()
        assert not second.acquire()
        second.release_now()  # not the owner: kept
        assert first.locked()
        first.release_now()
        assert not first.locked()
    assert [cluster_store.get("eu", b).booking_id for b in ids] == ids
    assert cluster_redis.ping()


def test_a_release_wakes_its_waiters_on_a_cluster(cluster_locks):
    """The release script writes the lock and the wake list in one slot, and the blocking
    wait goes to that slot's primary, on every primary."""
    for booking_id in (f"w-{n}" for n in range(12)):
        holder, waiter = (
            cluster_locks.of("eu", booking_id, "t1"),
            cluster_locks.of("eu", booking_id),
        )
        assert holder.acquire()
        assert waiter.holder_to_wait_for() == "t1"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            woken = pool.submit(waiter.wait_for_release, "t1", 0.3)
            time.sleep(0.05)
            released = time.monotonic()
            holder.release_now()
            assert woken.result(timeout=5), booking_id
            assert time.monotonic() - released < 0.1
        assert not waiter.wait_for_release("t2", 0.05)


def test_quota_counts_and_the_usage_gauges_read_every_primary(cluster, cluster_redis):
    counters = MonthlyCounters(cluster_redis)
    # Four organizers on each of the three primaries.
    by_primary: dict[int, list[str]] = {}
    for n in range(1000):
        organizer = f"{n:08x}-4792-4def-b2c9-c363a1bf41d5"
        slot = key_slot(keys.quota_counter(organizer, "2031-01").encode())
        found = by_primary.setdefault(cluster.primary_of(slot).port, [])
        if len(found) < 4:
            found.append(organizer)
    assert len(by_primary) == 3
    organizers = [o for found in by_primary.values() for o in found]
    for count, organizer in enumerate(organizers, start=1):
        for _ in range(count):
            assert counters.reserve(organizer, "2031-01", limit=100) is not None
    counters.unreserve(organizers[0], "2031-01")
    assert counters.created(organizers, "2031-01") == [0, *range(2, 13)]
    assert counters.created_in("2031-01") == {o: c for c, o in enumerate(organizers, 1)} | {
        organizers[0]: 0
    }
    assert counters.reserve(organizers[1], "2031-01", limit=2) is None


def test_an_unreachable_cluster_is_a_store_outage_not_a_failed_start():
    from service.foundation.errors import StoreUnavailable

    target = parse_redis_url("redis+cluster://127.0.0.1:1")
    unreachable = BookingStore(
        RedisGateway(lambda: redis_client.build(target, 0.2), timeout=0.2), ttl_seconds=60
    )
    with pytest.raises(StoreUnavailable):
        unreachable.get("eu", "b")


# --- records under the names of releases before hash tags (single node) ------------------


def test_a_record_under_the_old_name_is_still_read(module_redis, flushed_store):
    old = keys.legacy_booking("booking-eu", "room-42:x")
    assert old == "mps:v1:booking:booking-eu:room-42:x"  # as releases before wrote it
    tombstone = record("room-42:x").cancelled()
    module_redis.client().set(old, tombstone.to_json(), ex=3600)
    found = flushed_store.get("booking-eu", "room-42:x")
    assert found is not None and found.status is Status.CANCELLED  # the tombstone survives
    rebooked = replace(record("room-42:x"), generation=1)
    flushed_store.put("booking-eu", "room-42:x", rebooked)
    assert flushed_store.get("booking-eu", "room-42:x") == rebooked  # the new name wins
    stored = redis.Redis.from_url(module_redis.url).get(keys.booking("booking-eu", "room-42:x"))
    assert stored.decode() == rebooked.to_stored()


def test_a_counter_under_the_old_name_carries_on(module_redis, flushed_redis):
    counters = MonthlyCounters(flushed_redis)
    other = "11111111-4792-4def-b2c9-c363a1bf41d5"
    module_redis.client().set(keys.legacy_quota_counter(ORGANIZER, "2031-02"), 7)
    module_redis.client().set(keys.legacy_quota_counter(other, "2031-02"), 3)
    assert counters.created([ORGANIZER, other], "2031-02") == [7, 3]
    assert counters.reserve(ORGANIZER, "2031-02", limit=9) == 8
    assert counters.reserve(ORGANIZER, "2031-02", limit=9) == 9
    assert counters.reserve(ORGANIZER, "2031-02", limit=9) is None
    assert (
        0
        < module_redis.client().ttl(keys.quota_counter(ORGANIZER, "2031-02"))
        <= keys.COUNTER_TTL_SECONDS
    )
    assert counters.created_in("2031-02") == {ORGANIZER: 9, other: 3}


# --- TLS with an ACL user ----------------------------------------------------------------


def test_tls_with_the_acl_user_and_a_client_certificate(tmp_path):
    server = TlsRedis(tmp_path).start()
    try:
        target = replace(
            parse_redis_url(server.url()),
            ca_bundle=server.ca_bundle,
            client_cert=server.client_cert,
            client_key=server.client_key,
        )
        tls_redis = RedisGateway(lambda: redis_client.build(target, 1), timeout=1)
        tls_store = BookingStore(tls_redis, ttl_seconds=60)
        tls_store.put("eu", "b", record("b"))
        found = tls_store.get("eu", "b")
        assert found is not None and found.booking_id == "b" and found.meeting == {"id": "m"}
        lock = BookingLocks(tls_redis, ttl=5).of("eu", "b", "t")
        assert lock.acquire()
        assert lock.holder_to_wait_for() == "t"
        assert not lock.wait_for_release("t", 0.05)
        lock.release_now()
        assert lock.wait_for_release("t", 0.05)
        assert MonthlyCounters(tls_redis).reserve(ORGANIZER, "2031-03", 5) == 1
        assert MonthlyCounters(tls_redis).created_in("2031-03") == {ORGANIZER: 1}
        # The ACL user may touch nothing outside mps:*.
        client = redis_client.build(target, 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.get("elsewhere")
    finally:
        server.stop()
