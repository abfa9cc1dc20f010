"""What a test measures of the service: its /metrics as a scrape sees them, and how long a
call took."""

from __future__ import annotations

import time
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> Samples:
    """GET /metrics, parsed: sample name -> [(labels, value)]."""
    answer = requests.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str):
    """The value of the one sample with these labels; 0 when it was never counted."""
    found = [
        v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())
    ]
    assert len(found) <= 1, f"{name}{labels} matches several samples: {found}"
    return found[0] if found else 0.0


def gauge_values(url: str, name: str) -> list[float]:
    """Every sample of a gauge (one per live worker in gunicorn's multiprocess mode)."""
    return [v for _, v in scrape(url).get(name, [])]


def timed(call, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """`call(*args, **kwargs)` and how many seconds it took."""
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started
