"""A bounded benchmark of the real stack: `make bench` (not part of `make test`).

Starts redis-server, the Graph emulator and the service (gunicorn) on loopback ports, then
measures new bookings (each a Graph call) and replays (answered from Redis) with a fixed
number of requests and threads. Prints requests per second and latency percentiles.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.support.factories import booking
from tests.support.stack import Client, open_stack


def measure(name: str, client: Client, bodies: list[dict], threads: int) -> None:
    local = threading.local()  # requests.Session is not thread-safe: one per thread

    def post(body: dict) -> float:
        if not hasattr(local, "client"):
            local.client = Client(client.base_url, client.key)
        started = time.perf_counter()
        response = local.client.post(body)
        assert response.status_code in (200, 201), response.text
        return time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = sorted(pool.map(post, bodies))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<10} {len(bodies):>6} requests  {len(bodies) / elapsed:8.1f} req/s  "
        f"p50 {quantiles[49] * 1000:6.1f} ms  p99 {quantiles[98] * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=200)
    parser.add_argument("--replays", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        with open_stack(root, "bench", args.workers) as (service, caller):
            client = Client(service.url, caller.key)
            organizer = str(uuid.uuid4())
            bodies = [booking(organizer) for _ in range(args.bookings)]
            measure("create", client, bodies, args.threads)
            replays = [bodies[i % len(bodies)] for i in range(args.replays)]
            measure("replay", client, replays, args.threads)


if __name__ == "__main__":
    main()
