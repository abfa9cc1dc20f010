"""`make bench`: issue 11's side-by-side benchmark of the real stack, on loopback.

Starts redis-server, the Graph emulator, the service (its production gunicorn settings,
2 workers x 8 gthreads, talked to directly, not through nginx) and the floor app
(tests/bench/floor_app.py, same settings), provisions bookings, and runs the scenarios of
tests/bench/scenarios.py: one line each on stdout. Then rewrites the bench section of
docs/performance.md and docs/performance.png. Load comes from wrk (2 threads, 32
connections) or from Python threads where each request must be counted (storms, bulk).
Scenarios 9 and 10 (tests/bench/overhead.py) start what they compare themselves: a local
OTLP receiver, and a second emulator serving an Entra-only Redis front before a
redis-server of its own.

Everything started is stopped on exit, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from tests.bench.measure import load_average
from tests.bench.report import CHART, PAGE, Figure, write_chart, write_page
from tests.bench.rig import THREADS, WORKERS, Rig
from tests.bench.scenarios import SCENARIOS, Bench, Settings


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and requests, for trying it out"
    )
    parser.add_argument(
        "--skip",
        type=int,
        action="append",
        default=[],
        choices=sorted(SCENARIOS),
        metavar="N",
        help="leave scenario N out (repeatable)",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help=f"print only; leave {PAGE.name} and {CHART.name} as they are",
    )
    return parser.parse_args()


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, stopping the stack


def main() -> None:
    args = arguments()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    settings = Settings.quick() if args.quick else Settings()
    started = time.perf_counter()
    load_before = load_average()
    figures: list[Figure] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as directory, Rig(Path(directory)) as rig:
        bench = Bench(rig, settings, rig.service(), rig.floor())
        bench.bodies = bench.provision(bench.service.url)
        print(
            f"service and floor: {WORKERS} workers × {THREADS} gthreads each; "
            f"{len(bench.bodies)} bookings provisioned",
            flush=True,
        )
        for number, scenario in SCENARIOS.items():
            if number in args.skip:
                print(f"{number} skipped", flush=True)
                notes.append(f"Scenario {number} was skipped in this run.")
                continue
            line, found = scenario(bench)
            print(line, flush=True)
            figures.extend(found)
    elapsed = time.perf_counter() - started
    print(f"bench done in {elapsed:.0f} s", flush=True)
    if args.no_write:
        return
    command = "python -m tests.bench.run" + " ".join(
        [""] + (["--quick"] if args.quick else []) + [f"--skip {n}" for n in args.skip]
    )
    notes.append(
        f"The run took {elapsed:.0f} s. 1-minute load average {load_before:.1f} at its start "
        f"and {load_average():.1f} at its end (on {os.cpu_count()} cores; other work shares "
        "the machine, so compare the figures of one run, not of two)."
    )
    write_page(figures, notes, command)
    write_chart(figures)
    print(f"wrote {PAGE} and {CHART}", file=sys.stderr)


if __name__ == "__main__":
    main()
