"""Slow clients, measured: `make bench` (not part of `make test`).

Starts redis-server, the Graph emulator and the service (gunicorn, 2 workers x 8 threads)
on loopback, with nginx in front (deploy/base/proxy/nginx.conf.template, its production
timeouts). Ordinary callers (`--threads`, each alternating GET /healthz and a new booking)
run for a while with and without slow connections that send part of a request and then
nothing or a byte every 2 s (tests/support/proxy.py, SlowClients):

- through the proxy, quiet, then with `--slow` (200) slow connections for `--seconds` (60);
- against gunicorn directly, quiet, then with `--direct-slow` (20) connections that never
  finish their head, for `--direct-seconds` (15): more than its 16 threads, so everyone
  else waits. (Not the partial bodies here: they go to POST /v1/meetings without an API
  key, which the service answers 401 at once; gunicorn then drains the body for at most
  5 s. A caller with a key that sends half its body holds the thread as long as a head.)

One line per case: requests answered 2xx per second, failures (errors, timeouts after
`--timeout` s), p50/p99 of each kind, slow connections the server closed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local_stack.clients import Caller

from tests.support.proxy import KINDS, ProxyProcess, SlowClients, Traffic, percentile
from tests.support.stack import ServiceProcess, open_stack


@contextmanager
def stack(root: Path, workers: int) -> Iterator[tuple[ServiceProcess, ProxyProcess, Caller]]:
    with open_stack(root, "bench", workers, ORGANIZER_MONTHLY_LIMIT="0") as (service, caller):
        proxy = ProxyProcess(
            root / "proxy", f"127.0.0.1:{service.port}", service_env=service.env
        ).start()
        try:
            yield service, proxy, caller
        finally:
            proxy.stop()


def case(
    name: str,
    url: str,
    port: int,
    caller: Caller,
    args: argparse.Namespace,
    slow: int,
    seconds: float,
    kinds: tuple[str, ...] = KINDS,
) -> None:
    organizer = str(uuid.uuid4())
    traffic = Traffic(url, caller.key, organizer, threads=args.threads, timeout=args.timeout)
    attack = SlowClients(port, slow, kinds=kinds) if slow else None
    if attack:
        attack.start()
        time.sleep(1)  # every slow connection open before measuring
    traffic.start()
    time.sleep(seconds)
    traffic.stop()
    if attack:
        attack.stop()
    answered = {kind: values for kind, values in traffic.latencies.items()}
    ok = sum(len(values) for values in answered.values())
    closed = f"{len(attack.closed):>5} closed by the server" if attack else ""
    print(
        f"{name:<28} {seconds:>4.0f} s  {ok / traffic.elapsed:7.1f} req/s  "
        f"{len(traffic.failures):>5} failed  "
        + "  ".join(
            f"{kind} p50 {percentile(values, 0.5) * 1000:6.1f} ms "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms"
            for kind, values in answered.items()
        )
        + f"  {closed}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--quiet-seconds", type=float, default=15)
    parser.add_argument("--direct-slow", type=int, default=20)
    parser.add_argument("--direct-seconds", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=5, help="callers' timeout, seconds")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as directory,
        stack(Path(directory), args.workers) as (
            service,
            proxy,
            caller,
        ),
    ):
        print(
            f"{args.threads} callers; proxy timeouts: header "
            f"{proxy.values['PROXY_HEADER_TIMEOUT']}, body {proxy.values['PROXY_BODY_TIMEOUT']}",
            flush=True,
        )
        case("proxy, quiet", proxy.url, proxy.port, caller, args, 0, args.quiet_seconds)
        case(
            f"proxy, {args.slow} slow connections",
            proxy.url,
            proxy.port,
            caller,
            args,
            args.slow,
            args.seconds,
        )
        case("direct, quiet", service.url, service.port, caller, args, 0, args.quiet_seconds)
        case(
            f"direct, {args.direct_slow} slow heads",
            service.url,
            service.port,
            caller,
            args,
            args.direct_slow,
            args.direct_seconds,
            kinds=("head", "trickle"),
        )


if __name__ == "__main__":
    main()
