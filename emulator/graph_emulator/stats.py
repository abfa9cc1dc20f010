"""What the emulator saw, for tests to assert on (GET /_emulator/stats).

Never stores a secret, client assertion or access token: token requests are recorded
by client id, credential kind and scope only.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

from .operations import OPERATIONS

MAX_RECORDS = 10_000  # bounded, so a long load run cannot exhaust memory


class Stats:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._token_requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)

    def count(self, operation: str, outcome: int | str) -> None:
        """Count one answered request; outcome is the status or "reset"."""
        with self._lock:
            self._calls[operation][str(outcome)] += 1

    def record_token_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._token_requests.append(entry)

    def record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._token_requests.clear()
            self._requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            calls = {op: dict(self._calls.get(op, {})) for op in sorted(OPERATIONS)}
            calls.update({op: dict(c) for op, c in self._calls.items() if op not in calls})
            return {
                "calls": calls,
                "tokenRequests": list(self._token_requests),
                "requests": list(self._requests),
            }
