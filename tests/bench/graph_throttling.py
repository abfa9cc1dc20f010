"""Figure 5 of issue 11, on its own: new bookings from many callers while the emulator
admits R createOrGet calls a second (429 + Retry-After: 1 beyond), with and without
GRAPH_RATE_LIMIT. Prints meetings/s ÷ R, non-2xx answers, 429s Graph sent, duplicates.

    python -m tests.bench.graph_throttling --bookings 2000 --callers 32 --rate 100 \
        --graph-rate-limit 100/second --graph-rate-limit ""
"""

from __future__ import annotations

import argparse
import concurrent.futures
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from local_stack.api_server import service_environment
from local_stack.clients import Caller, write_clients_file
from local_stack.redis_server import RedisServer

from tests.support.emulator import EmulatorHandle, default_config, start_emulator
from tests.support.factories import booking
from tests.support.metrics import scrape, value
from tests.support.stack import Client, ServiceProcess


def run(
    root: Path,
    emulator: EmulatorHandle,
    env: dict[str, str],
    args: argparse.Namespace,
    key: str,
    limit: str,
) -> None:
    if limit:
        env = {**env, "GRAPH_RATE_LIMIT": limit}
    service = ServiceProcess(root / f"service-{limit.replace('/', '-') or 'unpaced'}", env)
    service.workers = args.workers
    service.start()
    try:
        emulator.reset()
        emulator.rate_limit("createOrGet", args.rate)
        organizer = str(uuid.uuid4())
        bodies = [booking(organizer) for _ in range(args.bookings)]
        local = threading.local()

        def post(body: dict) -> int:
            if not hasattr(local, "client"):
                local.client = Client(service.url, key)
            return int(local.client.post(body).status_code)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.callers) as pool:
            statuses = Counter(pool.map(post, bodies))
        elapsed = time.monotonic() - started
        stats = emulator.stats()
        throttled = stats["calls"].get("createOrGet", {}).get("429", 0)
        samples = scrape(service.url)
        waits = value(samples, "mps_graph_pacing_wait_seconds_count")
        mean_wait = value(samples, "mps_graph_pacing_wait_seconds_sum") / max(waits, 1)
        created = Counter(m["externalId"] for m in stats["meetings"] for _ in range(m["created"]))
        duplicates = sum(n - 1 for n in created.values() if n > 1)
        non_2xx = sum(n for status, n in statuses.items() if status not in (200, 201))
        rate = args.bookings / elapsed
        print(
            f"GRAPH_RATE_LIMIT={limit or '(unset)':<12} {args.bookings} bookings in "
            f"{elapsed:6.2f} s: {rate:6.1f} meetings/s = {rate / args.rate:.3f} R; "
            f"non-2xx {non_2xx}; Graph 429s {throttled}; duplicates {duplicates}; "
            f"mean wait for a turn {mean_wait * 1000:.1f} ms",
            flush=True,
        )
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--graph-rate-limit", action="append", default=None)
    args = parser.parse_args()
    limits = args.graph_rate_limit if args.graph_rate_limit is not None else ["100/second", ""]

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        setup = default_config(root, any_user=True, global_access_policy=True)
        caller = Caller("bench", secrets.token_urlsafe(32), ["*"])
        clients = write_clients_file(root / "clients.json", [caller])
        redis_server = RedisServer(root / "redis").start()
        try:
            with start_emulator(root, setup.config) as emulator:
                env = service_environment(
                    emulator,
                    setup.tenant_id,
                    setup.client_id,
                    redis_server.url,
                    clients,
                    AZURE_CLIENT_SECRET=setup.client_secret,
                    LOG_LEVEL="WARNING",
                )
                for limit in limits:
                    run(root, emulator, env, args, caller.key, limit)
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
