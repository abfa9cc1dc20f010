"""The in-memory meeting store, keyed the way createOrGet is: (tenant, user, externalId).

The lookup and the insert happen under one lock, so any number of simultaneous
createOrGet calls for one identity create exactly one meeting: the first caller
builds it (201) and every other caller gets that same object back (200).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

Meeting = dict[str, Any]


class MeetingKey(NamedTuple):
    tenant_id: str
    user_id: str  # lower-case object id
    external_id: str  # compared exactly, as Graph does


@dataclass
class _Entry:
    key: MeetingKey
    meeting: Meeting  # never changed once stored, so it can be shared with readers
    created: int = 1  # 201s produced for this identity
    returned: int = 0  # 200s produced for this identity


class MeetingStore:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._by_key: dict[MeetingKey, _Entry] = {}
        self._by_id: dict[tuple[str, str, str], _Entry] = {}

    def create_or_get(self, key: MeetingKey, build: Callable[[], Meeting]) -> tuple[Meeting, bool]:
        """Return (meeting, created). ``build`` runs only for a new identity."""
        with self._lock:
            entry = self._by_key.get(key)
            if entry is not None:
                entry.returned += 1
                return entry.meeting, False
            entry = _Entry(key=key, meeting=build())
            self._by_key[key] = entry
            self._by_id[(key.tenant_id, key.user_id, entry.meeting["id"])] = entry
            return entry.meeting, True

    def get(self, tenant_id: str, user_id: str, meeting_id: str) -> Meeting | None:
        with self._lock:
            entry = self._by_id.get((tenant_id, user_id, meeting_id))
        return None if entry is None else entry.meeting

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._by_id.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per identity with how many 201s and 200s it produced."""
        with self._lock:
            return [
                {
                    "tenantId": entry.key.tenant_id,
                    "userId": entry.key.user_id,
                    "externalId": entry.key.external_id,
                    "meetingId": entry.meeting["id"],
                    "created": entry.created,
                    "returned": entry.returned,
                }
                for entry in self._by_key.values()
            ]
