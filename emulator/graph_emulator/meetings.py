"""The in-memory meeting store, keyed the way createOrGet is: (tenant, user, externalId).

The lookup and the insert happen under one lock, so any number of simultaneous
createOrGet calls for one identity create exactly one meeting: the first caller
builds it (201) and every other caller gets that same object back (200).

A PATCH replaces the stored object with an updated copy (readers keep the object they
were given, which never changes). A DELETE removes the meeting: GET, PATCH and DELETE
of its id find nothing afterwards, and its identity is freed, so createOrGet with the
same (tenant, user, externalId) creates a new meeting with a new id (201). Real Graph
does not document what createOrGet does after a delete; freeing the identity is the
emulator's choice, and the service does not rely on it. Deleted meetings stay in the
snapshot, marked ``deleted``, so counts of created meetings never go down.
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
    meeting: Meeting  # replaced, never changed in place, so it can be shared with readers
    created: int = 1  # 201s produced for this meeting
    returned: int = 0  # 200s produced for this meeting by createOrGet
    patched: int = 0  # successful PATCHes
    deleted: bool = False


class MeetingStore:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._by_key: dict[MeetingKey, _Entry] = {}  # live meetings only
        self._by_id: dict[tuple[str, str, str], _Entry] = {}  # live meetings only
        self._history: list[_Entry] = []  # every meeting ever created, deleted ones too

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
            self._history.append(entry)
            return entry.meeting, True

    def get(self, tenant_id: str, user_id: str, meeting_id: str) -> Meeting | None:
        """The live meeting with this id, organised by this user; None if unknown or deleted."""
        with self._lock:
            entry = self._by_id.get((tenant_id, user_id, meeting_id))
        return None if entry is None else entry.meeting

    def find(self, meeting_id: str) -> Meeting | None:
        """The live meeting with this id, whoever organises it (for the admin API)."""
        with self._lock:
            return next(
                (e.meeting for e in self._by_id.values() if e.meeting["id"] == meeting_id), None
            )

    def update(
        self, tenant_id: str, user_id: str, meeting_id: str, change: Callable[[Meeting], Meeting]
    ) -> Meeting | None:
        """Store ``change(meeting)`` and return it; None if there is no such live meeting.

        ``change`` runs under the lock; if it raises, the meeting stays as it was.
        """
        with self._lock:
            entry = self._by_id.get((tenant_id, user_id, meeting_id))
            if entry is None:
                return None
            entry.meeting = change(entry.meeting)
            entry.patched += 1
            return entry.meeting

    def delete(self, tenant_id: str, user_id: str, meeting_id: str) -> bool:
        """Delete a live meeting and free its identity; False if there is none."""
        with self._lock:
            entry = self._by_id.pop((tenant_id, user_id, meeting_id), None)
            if entry is None:
                return False
            del self._by_key[entry.key]
            entry.deleted = True
            return True

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._by_id.clear()
            self._history.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per meeting ever created (oldest first), deleted ones included."""
        with self._lock:
            return [
                {
                    "tenantId": entry.key.tenant_id,
                    "userId": entry.key.user_id,
                    "externalId": entry.key.external_id,
                    "meetingId": entry.meeting["id"],
                    "created": entry.created,
                    "returned": entry.returned,
                    "patched": entry.patched,
                    "deleted": entry.deleted,
                }
                for entry in self._history
            ]
