"""The service's footprint: memory per worker and time from start to ready.

Issue 11, figure 7. Starts the stack as the tests do (open_stack: redis-server, the
emulator, the service under gunicorn with its production settings), warms the workers up
with `--warmup` requests (creates, replays, GETs, /metrics and /openapi.yaml), then reads
for each worker VmRSS and RssAnon (/proc/<pid>/status) and Pss and USS (private clean +
private dirty, /proc/<pid>/smaps_rollup). With `preload_app` the pages a worker shares with
the master count in its VmRSS but only in part in its Pss and not at all in its USS, so all
three are printed. Then starts `--starts` more gunicorns on the same Redis and emulator and
prints the time from Popen to the first /readyz 200 (median and range). Loopback only;
stops everything it starts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import requests
from local_stack.processes import free_port, stop_process

from tests.bench.measure import memory
from tests.support.factories import booking
from tests.support.processes import children
from tests.support.stack import Client, ServiceProcess, open_stack


def warm_up(url: str, key: str, count: int) -> None:
    client = Client(url, key)
    bodies = [booking(organizer_id=str(uuid.uuid4())) for _ in range(10)]
    for index in range(count):
        body = bodies[index % len(bodies)]
        answer = client.post(body)
        assert answer.status_code in (200, 201), answer.text
        if index % 5 == 0:
            assert client.get(body["bookingId"]).status_code == 200
        if index % 50 == 0:
            assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
            assert requests.get(f"{url}/openapi.yaml", timeout=10).status_code == 200


def time_to_ready(service: ServiceProcess, root: Path, index: int) -> float:
    other = ServiceProcess(root / f"start-{index}", service.env, workers=service.workers)
    other.directory.mkdir(parents=True, exist_ok=True)
    other.port = free_port()
    with other.log_path.open("ab") as log:
        started = time.perf_counter()
        other.process = other.launch(log)
    try:
        while True:
            try:
                if requests.get(f"{other.url}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            if other.process.poll() is not None or time.perf_counter() - started > 30:
                raise RuntimeError(f"gunicorn did not get ready:\n{other.log()}")
            time.sleep(0.005)
    finally:
        stop_process(other.process, 20.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="footprint-") as directory:
        root = Path(directory)
        with open_stack(root, "footprint", workers=args.workers) as (service, caller):
            assert service.process is not None
            warm_up(service.url, caller.key, args.warmup)
            time.sleep(0.5)
            master = memory(service.process.pid)
            print(
                f"master  VmRSS {master['VmRSS']:.1f} MiB  Pss {master['Pss']:.1f}  "
                f"USS {master['USS']:.1f}"
            )
            for pid in children(service.process.pid):
                figures = memory(pid)
                print(
                    f"worker  VmRSS {figures['VmRSS']:.1f} MiB  RssAnon {figures['RssAnon']:.1f}"
                    f"  RssFile {figures['RssFile']:.1f}  Pss {figures['Pss']:.1f}"
                    f"  USS {figures['USS']:.1f}"
                )
            times = [time_to_ready(service, root, index) for index in range(args.starts)]
            print(
                f"ready   median {statistics.median(times):.3f} s  "
                f"min {min(times):.3f}  max {max(times):.3f}  (n={len(times)})"
            )


if __name__ == "__main__":
    main()
