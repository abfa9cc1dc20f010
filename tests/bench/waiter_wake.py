"""How long after the owner's answer the last waiter of a duplicate storm is answered.

Issue 11, figure 4: `N` concurrent identical POSTs for a new booking (few enough to fit in
the service's threads at once), Graph slowed to `--latency-ms` by the emulator. One request
owns the booking's lock and calls Graph (201); the others wait for it and replay (200). For
each of `--rounds` new bookings this prints the time from the 201 to the last 200, measured
at the client, then the median and the worst, and the commands Redis ran per storm (its
INFO commandstats; EVALSHA counted once, not the commands of its script). Loopback only;
stops everything it starts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import redis
from local_stack.api_server import service_environment
from local_stack.clients import Caller, write_clients_file
from local_stack.redis_server import RedisServer

from tests.support.emulator import default_config, start_emulator
from tests.support.factories import booking
from tests.support.stack import Client, ServiceProcess


def storm(url: str, key: str, body: dict[str, object], size: int) -> float:
    """Seconds from the 201 to the last 200 of `size` concurrent POSTs of `body`."""
    start = threading.Barrier(size)

    def post(_: int) -> tuple[int, float]:
        client = Client(url, key)
        start.wait()
        response = client.post(body)
        return response.status_code, time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(max_workers=size) as pool:
        answers = list(pool.map(post, range(size)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (size - 1) + [201], statuses
    owner = next(at for status, at in answers if status == 201)
    return max(at for _, at in answers) - owner


def commands_run(client: redis.Redis) -> int:
    return sum(int(stats["calls"]) for stats in client.info("commandstats").values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory, ExitStack() as stopping:
        root = Path(directory)
        setup = default_config(root, any_user=True, global_access_policy=True)
        caller = Caller("bench", secrets.token_urlsafe(32), ["*"])
        clients = write_clients_file(root / "clients.json", [caller])
        redis_server = RedisServer(root / "redis").start()
        stopping.callback(redis_server.stop)
        emulator = stopping.enter_context(start_emulator(root, setup.config))
        env = service_environment(
            emulator,
            setup.tenant_id,
            setup.client_id,
            redis_server.url,
            clients,
            AZURE_CLIENT_SECRET=setup.client_secret,
            LOG_LEVEL="WARNING",
        )
        service = ServiceProcess(root / "service", env, workers=args.workers).start()
        stopping.callback(service.stop)
        organizer = str(uuid.uuid4())
        Client(service.url, caller.key).post(booking(organizer))  # warm: token, connections
        emulator.add_fault(target="createOrGet", latencyMs=args.latency_ms)
        redis_client = redis.Redis.from_url(redis_server.url)
        stopping.callback(redis_client.close)
        commands_before = commands_run(redis_client)
        gaps = []
        for _ in range(args.rounds):
            gap = storm(service.url, caller.key, booking(organizer), args.requests)
            gaps.append(gap * 1000)
            print(f"last waiter answered {gap * 1000:6.1f} ms after the owner")
        commands = (commands_run(redis_client) - commands_before) / args.rounds
        print(
            f"{args.requests} concurrent POSTs, Graph at {args.latency_ms} ms, "
            f"{args.rounds} rounds: median {statistics.median(gaps):.1f} ms, "
            f"worst {max(gaps):.1f} ms; {commands:.0f} Redis commands per storm"
        )


if __name__ == "__main__":
    main()
