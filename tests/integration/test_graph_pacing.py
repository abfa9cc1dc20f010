"""service.graph.pacing against a real redis-server: calls of several threads (and of
several pacers, as workers and replicas have) are spaced 1/rate apart; a refused turn
reserves nothing; Graph's Retry-After seen by one GraphClient delays another's call, and
a turn past the budget is a 503 without a Graph call; without Redis, calls go out unpaced;
the scripts run on a Redis Cluster."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis
from local_stack.redis_server import RedisServer
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.config import Settings, parse_redis_url
from service.foundation.backoff import Budget
from service.foundation.errors import GraphUnavailable
from service.graph.pacing import UNAVAILABLE_PAUSE, GraphPacer, Refused
from service.storage import keys, redis_client
from service.storage.gateway import RedisGateway
from service.wiring import Services
from tests.support.redis_topologies import Cluster

pytestmark = pytest.mark.integration

APP = "pacing-test-app"
# The turns are exact; the sends are as late as a thread's sleep overshoots, which on a
# loaded 2-core machine reaches tens of milliseconds: spacing is checked with this slack.
SLACK = 0.035


def redis_on(url: str) -> RedisGateway:
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    return RedisGateway(client, timeout=0.5)


@pytest.fixture
def url(flushed_redis: RedisGateway, module_redis) -> str:
    return str(module_redis.url)


def pacing(outcome: str) -> float:
    return REGISTRY.get_sample_value("mps_graph_pacing_total", {"outcome": outcome}) or 0.0


def test_calls_of_many_threads_and_pacers_are_spaced_one_interval_apart(url):
    interval = 0.05  # 20/second
    pacers = [GraphPacer(redis_on(url), APP, interval=interval) for _ in range(2)]
    sent: list[float] = []
    lock = threading.Lock()

    def calls(pacer: GraphPacer) -> None:
        for _ in range(5):
            pacer.take_turn(Budget(10))
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=calls, args=(pacers[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent.sort()
    assert len(sent) == 20
    # However the sends interleave, any m + 1 of them span at least m intervals.
    for k, earlier in enumerate(sent):
        for j in range(k + 1, len(sent)):
            assert sent[j] - earlier >= (j - k) * interval - SLACK, [t - sent[0] for t in sent]
    # Paced, not slowed: the 20 calls took about 19 intervals.
    assert sent[-1] - sent[0] < 19 * interval + 0.25


def test_a_turn_beyond_the_budget_is_refused_and_reserves_nothing(url):
    pacer = GraphPacer(redis_on(url), APP, interval=1.0)
    first = pacer.reserve(10)
    assert first is not None and first.admitted and first.wait == 0

    refused = pacer.reserve(0.5)
    assert refused is not None and not refused.admitted
    assert 0.9 < refused.wait <= 1.0 and not refused.gated
    with pytest.raises(Refused):
        pacer.take_turn(Budget(0.5))

    # The refusals took no slot: the next call gets the second slot, not a later one.
    second = pacer.reserve(10)
    assert second is not None and second.admitted and 0.9 < second.wait <= 1.0


def test_the_gate_one_pacer_closes_holds_back_another(url):
    closing = GraphPacer(redis_on(url), APP, interval=None)
    other = GraphPacer(redis_on(url), APP, interval=None)  # another worker or replica
    closing.close_gate(0.6)
    closing.close_gate(0.1)  # a shorter Retry-After never shortens the gate

    turn = other.reserve(10)
    assert turn is not None and turn.admitted and turn.gated
    assert 0.5 < turn.wait <= 0.6
    refused = other.reserve(0.2)
    assert refused is not None and not refused.admitted and refused.gated

    # Another app has its own gate.
    elsewhere = GraphPacer(redis_on(url), "another-app", interval=None).reserve(10)
    assert elsewhere is not None and elsewhere.wait == 0


def test_the_pace_resumes_after_the_gate_without_a_burst(url):
    interval = 0.1
    pacer = GraphPacer(redis_on(url), APP, interval=interval)
    pacer.close_gate(0.5)
    waits = []
    for _ in range(3):
        turn = pacer.reserve(10)
        assert turn is not None and turn.admitted
        waits.append(turn.wait)
    assert 0.4 < waits[0] <= 0.5
    assert waits[1] == pytest.approx(waits[0] + interval, abs=0.01)
    assert waits[2] == pytest.approx(waits[0] + 2 * interval, abs=0.01)


def test_without_redis_calls_go_out_unpaced_and_paced_again_when_it_returns(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        now = [0.0]  # the pacer's monotonic clock, moved by hand
        pacer = GraphPacer(redis_on(server.url), APP, interval=10.0, clock=lambda: now[0])
        pacer.take_turn(Budget(5))  # the first call: no wait, the next turn is 10 s away
        server.stop()
        before = pacing("unpaced")
        started = time.monotonic()
        for _ in range(3):
            pacer.take_turn(Budget(5))  # neither waits 10 s nor raises
            pacer.close_gate(30)
        assert time.monotonic() - started < 1.5
        assert pacing("unpaced") == before + 3

        server.start()  # empty: nothing was persisted
        assert pacer.reserve(5) is None  # within UNAVAILABLE_PAUSE, Redis is not asked
        now[0] += UNAVAILABLE_PAUSE
        first, second = pacer.reserve(5), pacer.reserve(20)
        assert first is not None and first.admitted and first.wait == 0
        assert second is not None and second.admitted and 9.9 < second.wait <= 10
    finally:
        server.stop()


def new_meeting() -> dict[str, str]:
    return {"externalId": str(uuid.uuid4())}


def test_graphs_retry_after_to_one_client_delays_the_others_call(
    service_env, redis_server, emulator, organizer
):
    settings = Settings.from_env(service_env())
    redis.Redis.from_url(redis_server.url).delete(
        keys.graph_gate(settings.client_id), keys.graph_pace(settings.client_id)
    )
    first, second = Services.from_settings(settings), Services.from_settings(settings)
    for services in (first, second):
        services.tokens.token()  # both hold a token: only Graph's timing is measured
    emulator.add_fault(target="createOrGet", status=429, retryAfter="1", count=1)
    bodies = [new_meeting(), new_meeting()]

    def statuses() -> list[int]:
        ids = {body["externalId"] for body in bodies}
        return [
            r["status"]
            for r in emulator.stats()["requests"]
            if (r.get("body") or {}).get("externalId") in ids
        ]

    throttled = threading.Thread(target=first.graph.create_or_get, args=(organizer, bodies[0]))
    started = time.monotonic()
    throttled.start()
    while 429 not in statuses():
        assert time.monotonic() - started < 5
        time.sleep(0.01)

    result = second.graph.create_or_get(organizer, bodies[1])
    waited = time.monotonic() - started
    throttled.join()

    assert result.created
    assert waited >= 0.9  # it waited for the first client's Retry-After
    assert sorted(statuses()) == [201, 201, 429]  # and drew no 429 of its own


def test_a_turn_after_the_budget_is_a_503_and_graph_is_not_called(
    service_env, redis_server, emulator, organizer
):
    settings = Settings.from_env(service_env(GRAPH_BUDGET_SECONDS="1", GRAPH_RATE_LIMIT="1/second"))
    services = Services.from_settings(settings)
    services.tokens.token()
    services.graph.pacer.close_gate(3)  # Graph asked the app to wait 3 s
    body = new_meeting()

    started = time.monotonic()
    with pytest.raises(GraphUnavailable) as raised:
        services.graph.create_or_get(organizer, body)
    assert time.monotonic() - started < 0.5  # refused at once, not after sleeping

    assert raised.value.extensions["reason"] == "throttled"
    assert raised.value.headers["Retry-After"] == "3"
    sent = [r for r in emulator.stats()["requests"] if (r.get("body") or {}) == body]
    assert not sent
    redis.Redis.from_url(redis_server.url).delete(keys.graph_gate(settings.client_id))


def test_the_scripts_run_on_a_redis_cluster(tmp_path):
    # Both scripts touch the app's keys of one hash slot, and call TIME: a cluster takes
    # them (a cross-slot script would be refused, and the pacer would only ever degrade).
    cluster = Cluster(tmp_path / "cluster").start()
    try:
        target = parse_redis_url(cluster.url)
        gateway = RedisGateway(lambda: redis_client.build(target, 0.5), timeout=0.5)
        pacer = GraphPacer(gateway, APP, interval=0.5)
        before = pacing("unpaced")
        pacer.close_gate(0.2)
        first, second = pacer.reserve(5), pacer.reserve(5)
        assert first is not None and first.gated and 0.1 < first.wait <= 0.2
        assert second is not None and second.wait == pytest.approx(first.wait + 0.5, abs=0.02)
        assert pacing("unpaced") == before
    finally:
        cluster.stop()
