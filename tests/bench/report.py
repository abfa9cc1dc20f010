"""The bench's figures, written into docs/performance.md (between the bench markers only,
so the prose around them survives) and drawn as docs/performance.png."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.stack import REPO

PAGE = REPO / "docs" / "performance.md"
CHART = REPO / "docs" / "performance.png"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
INTRO = f"""# Performance

What `make bench` measures (issue 11) and what the service achieved on one machine. The
table and the chart (`performance.png`) are rewritten by each run; everything outside the
markers is kept.

{BEGIN}
{END}
"""


@dataclass(frozen=True)
class Figure:
    scenario: int
    name: str
    target: str
    measured: str
    ratio: str = ""
    # How far the target is met, as a number where 1 is exactly the target and more is
    # better (for the chart); None: no target (informational).
    score: float | None = None
    # An informational figure's number, drawn in the chart's second panel (req/s).
    value: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.score is None else self.score >= 1


def at_least(measured: float, target: float) -> float:
    return measured / target


def at_most(measured: float, target: float) -> float:
    """1 at the target, more the further below it (a measured 0 counts as twice as good)."""
    return target / measured if measured > 0 else 2.0


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"v=(\S+)", redis_version)
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "redis-server": found.group(1) if found else "unknown",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(figures: Sequence[Figure]) -> str:
    rows = ["| # | figure | target | measured | ratio | met? |", "|---|---|---|---|---|---|"]
    for figure in figures:
        met = {True: "yes", False: "**no**", None: "—"}[figure.met]
        rows.append(
            f"| {figure.scenario} | {figure.name} | {figure.target} | {figure.measured} "
            f"| {figure.ratio or '—'} | {met} |"
        )
    return "\n".join(rows)


def section(figures: Sequence[Figure], notes: Sequence[str], command: str) -> str:
    about = ", ".join(f"{name} {value}" for name, value in machine().items())
    return "\n".join(
        [
            BEGIN,
            f"Run: `{command}`. Machine: {about}.",
            "",
            table(figures),
            "",
            *(f"- {note}" for note in notes),
            "",
            "![figures as a fraction of their targets](performance.png)",
            END,
        ]
    )


def write_page(figures: Sequence[Figure], notes: Sequence[str], command: str) -> None:
    text = PAGE.read_text(encoding="utf-8") if PAGE.exists() else INTRO
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(head + section(figures, notes, command) + tail, encoding="utf-8")


def write_chart(figures: Sequence[Figure]) -> None:
    """Left: each figure with a target, as measured ÷ target (or target ÷ measured for an
    upper bound), so at or beyond the line at 1 the target is met. Right: the figures
    without a target (scenario 8's throughput per worker and thread setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [f for f in figures if f.score is not None]
    informational = [f for f in figures if f.value is not None]
    rows = max(len(scored), len(informational), 1)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 0.4 * rows + 1.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    # Capped so one figure far beyond its target does not flatten the others.
    left.barh(
        [f"{f.scenario}. {f.name}" for f in scored],
        [min(f.score or 0.0, 3.0) for f in scored],
        color=["#2a9d4b" if f.met else "#d1495b" for f in scored],
    )
    left.axvline(1.0, color="black", linewidth=1)
    left.invert_yaxis()
    left.set_xlim(0, 3.1)
    left.set_xlabel("fraction of target (≥ 1: met; capped at 3)")
    left.set_title("issue 11's targets")
    right.barh(
        [f.name.removeprefix("replay, ") for f in informational],
        [f.value or 0.0 for f in informational],
        color="#4a6fa5",
    )
    right.invert_yaxis()
    right.set_xlabel("replay req/s (wrk, 2 × 32)")
    right.set_title("8. workers × threads")
    figure.suptitle("make bench")
    figure.tight_layout()
    figure.savefig(CHART, dpi=100)
    plt.close(figure)
