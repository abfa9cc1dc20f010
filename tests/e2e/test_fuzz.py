"""The API fuzzed against its own document: schemathesis, bounded, with a fixed seed, once
per security scheme: the stack takes both (CALLER_AUTH=both), and the fuzzer runs with the
caller's API key, then with an Entra caller token of the caller's app from the emulator.

Every phase (explicit examples, coverage of each schema's edges, random fuzzing, and the
stateful phase that follows the document's links from POST /v1/meetings to GET, PATCH and
DELETE of the booking) runs every check in positive and negative mode against the real
stack: gunicorn, Redis and the Graph emulator. The run must end without a failure.

Two checks are configured rather than left at their defaults:

negative_data_rejection also accepts 413: a body over MAX_BODY_BYTES (64 KiB) is refused
before its fields are read, which is a rejection like 400 (seen with seed 3: 1,000 attendees
and a long subject in a PATCH).

positive_data_acceptance also accepts 400. The document states in JSON Schema every rule it
can (patterns, lengths, formats, exactly one organizer, attendee identity, both times or
neither); these rules it states only in words, and a schema-valid request that breaks them
is rightly refused with 400:
- the end of a meeting must be after its start (JSON Schema cannot compare two values);
- `organizerPool` must name a pool of ORGANIZER_POOLS_FILE (configuration, not schema);
- `chatInfo` needs a service running Graph beta (this one runs v1.0, the default);
- a time must fall within the years 0001-9999 once converted to UTC.
Every other check runs as schemathesis defines it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_stack.redis_server import RedisServer

from tests.support.stack import REPO, Client, ServiceProcess, open_stack

pytestmark = pytest.mark.e2e

SEED = 20261130
# Per operation and phase, for each of the two runs (one per security scheme). 150 in one
# run took about 20 s on an idle 2-core machine (some 1,500 test cases); each run's
# subprocess timeout keeps a slow machine within the suite's budget.
MAX_EXAMPLES = 75
TIMEOUT = 140
CONFIG = """\
[checks.negative_data_rejection]
# schemathesis' defaults, and 413: see this module's docstring.
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
]

[checks.positive_data_acceptance]
# schemathesis' defaults, and 400: see this module's docstring for the rules the document
# states only in words.
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[ServiceProcess, dict[str, str]]]:
    """A service whose Graph knows every organizer (with the access policy granted), so
    that generated GUIDs book meetings instead of all ending as 422; and the caller's
    credential for each security scheme."""
    directory = tmp_path_factory.mktemp("fuzz")
    with open_stack(directory, "fuzzer", redis_url=redis_server.url, caller_tokens=True) as (
        service,
        caller,
    ):
        assert caller.token is not None
        yield service, {"apiKeyBearer": caller.key, "entraToken": caller.token}


@pytest.mark.parametrize("scheme", ["apiKeyBearer", "entraToken"])
def test_schemathesis_finds_nothing(
    fuzzed: tuple[ServiceProcess, dict[str, str]], scheme: str, tmp_path: Path
) -> None:
    service, credentials = fuzzed
    key = credentials[scheme]
    # The credential is accepted, so the run fuzzes the API behind it, not the 401.
    usage = Client(service.url, key).usage(str(uuid.uuid4()))
    assert usage.status_code == 200, usage.text
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(config),
        "run", str(REPO / "openapi.yaml"),
        "--url", service.url,
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all",
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--report", "junit",
        "--report-junit-path", str(tmp_path / "junit.xml"),
        "--no-color",
    ]  # fmt: skip
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    output = result.stdout + result.stderr
    shown = output.replace(key, "<key>")
    assert result.returncode == 0, f"schemathesis found failures:\n{shown[-20000:]}"
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary is not None, shown[-5000:]
    generated, passed = map(int, summary.groups())
    assert generated >= 9 * 50 and passed == generated, shown[-5000:]
    # The stateful phase ran and followed the POST answer's links.
    links = re.search(r"API Links:\s+(\d+) covered", output)
    assert links is not None and int(links.group(1)) >= 3, shown[-5000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, shown[-5000:]
    print(
        json.dumps(
            {"scheme": scheme, "generated": generated, "passed": passed, "links": links.group(1)}
        )
    )
