"""What is e2e-specific: every answer a Client receives must be what openapi.yaml declares.
The stack itself (emulator, redis-server, service, callers, clients) comes from
tests/support/fixtures.py, shared with the other suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import openapi_check, stack


@pytest.fixture(autouse=True)
def answers_match_the_document() -> Iterator[None]:
    """Every answer a Client receives in an e2e test must be what openapi.yaml declares."""
    stack.RESPONSE_CHECKS.append(openapi_check.check)
    yield
    stack.RESPONSE_CHECKS.remove(openapi_check.check)
