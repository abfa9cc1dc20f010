"""Per-caller rate limits shared by two replicas: two service processes on one Redis."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

import pytest

from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

PROBLEM = "urn:meeting-provisioning:problem:"
LIMIT = 10  # per minute
SENT = 30


def test_two_replicas_share_one_callers_rate_limit(
    start_service: Callable[..., ServiceProcess], callers, tmp_path, organizer: str
) -> None:
    caller = callers["eu"]
    clients = tmp_path / "limited-clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "id": "rate-limited-caller",
                        "keySha256": hashlib.sha256(caller.key.encode()).hexdigest(),
                        "organizers": ["*"],
                        "rateLimit": f"{LIMIT}/minute",
                    }
                ]
            }
        )
    )
    replicas = [
        start_service(workers=1, CLIENTS_FILE=str(clients), DEFAULT_CALLER_RATE_LIMIT="1000/minute")
        for _ in range(2)
    ]
    answers = [Client(replicas[i % 2].url, caller.key).usage(organizer) for i in range(SENT)]
    ok = [a for a in answers if 200 <= a.status_code < 300]
    limited = [a for a in answers if a.status_code == 429]
    print(f"limit {LIMIT}/minute, sent {SENT} across 2 replicas: {len(ok)} 2xx, {len(limited)} 429")
    assert len(ok) == LIMIT and len(limited) == SENT - LIMIT
    # Both replicas refused some: the count is shared, not per process.
    assert {a.url.split("/v1")[0] for a in limited} == {r.url for r in replicas}
    refused = limited[0]
    assert refused.json()["type"] == PROBLEM + "rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Policy"] == f'"caller";q={LIMIT};w=60'
    assert re.fullmatch(r'"caller";r=0;t=\d+', refused.headers["RateLimit"])
    # The platform endpoints are not limited.
    for replica in replicas:
        assert Client(replica.url, None).session.get(f"{replica.url}/healthz").status_code == 200
    metrics = Client(replicas[0].url, None).session.get(f"{replicas[0].url}/metrics").text
    assert 'mps_caller_rate_limited_total{caller="rate-limited-caller"}' in metrics
