"""The fault suite's invariant and its table: for each booking a test touched, the emulator
holds exactly one meeting (no duplicate, none lost), whatever the caller saw on the way.

A test's `Tally` counts the requests its `CountingClient`s send and, at the end, the
meetings and createOrGet calls per externalId at the emulator: one row of the fault table
(`TABLE`, printed by tests/faults/conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from service.config import DEFAULT_EXTERNAL_ID_NAMESPACE
from service.domain.booking import external_id
from tests.support.emulator import EmulatorHandle
from tests.support.stack import Client


def booking_external_id(caller_id: str, booking_id: str) -> str:
    """The externalId the service derives, for answers the caller never received."""
    return external_id(DEFAULT_EXTERNAL_ID_NAMESPACE, caller_id, booking_id)


@dataclass
class Row:
    fault: str
    sent: int
    bookings: int
    created: int
    calls: int
    duplicates: int
    # Meeting options (tests/faults/test_options_faults.py): the PATCH calls Graph received
    # for the bookings' meetings, and whether the options are in effect at the end.
    patches: int | None = None
    options_in_effect: bool | None = None


TABLE: list[Row] = []


def meeting_counts(emulator: EmulatorHandle, external_ids: Iterable[str]) -> dict[str, dict]:
    """{externalId: {"created", "calls"}} from one stats snapshot of the emulator."""
    return _counts(emulator.stats(), set(external_ids))


def _counts(stats: dict[str, Any], wanted: set[str]) -> dict[str, dict]:
    counts = {e: {"created": 0, "calls": 0} for e in wanted}
    for meeting in stats["meetings"]:
        if meeting["externalId"] in wanted:
            counts[meeting["externalId"]]["created"] += meeting["created"]
    for request in stats["requests"]:
        body = request.get("body")
        if request["operation"] == "createOrGet" and isinstance(body, dict):
            if body.get("externalId") in wanted:
                counts[body["externalId"]]["calls"] += 1
    return counts


def graph_requests_of(emulator: EmulatorHandle, organizer: str) -> list[dict[str, Any]]:
    """Every createOrGet the emulator answered for this organizer, whatever its externalId."""
    return [
        r
        for r in emulator.stats()["requests"]
        if r["operation"] == "createOrGet" and r["userId"] == organizer.lower()
    ]


@dataclass
class Tally:
    """One test's traffic and its final count at the emulator (a row of the fault table)."""

    fault: str
    sent: int = 0
    row: Row | None = None
    strays: list[dict[str, Any]] = field(default_factory=list)
    clients: list[CountingClient] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, requests_sent: int = 1) -> None:
        with self._lock:
            self.sent += requests_sent

    def client(self, url: str, key: str) -> CountingClient:
        client = CountingClient(url, key, self)
        self.clients.append(client)
        return client

    def observe(
        self, emulator: EmulatorHandle, external_ids: Iterable[str], organizer: str | None = None
    ) -> dict[str, dict]:
        """Count the meetings at the emulator into this test's row, without asserting.

        With `organizer` (a fresh one per test), meetings of that organizer under any other
        externalId are found too: a duplicate the service made under a wrong externalId.
        """
        wanted = set(external_ids)
        stats = emulator.stats()
        counts = _counts(stats, wanted)
        self.strays = [
            m
            for m in stats["meetings"]
            if organizer is not None
            and m["userId"] == organizer.lower()
            and m["externalId"] not in wanted
        ]
        self.row = Row(
            fault=self.fault,
            sent=self.sent,
            bookings=len(counts),
            created=sum(c["created"] for c in counts.values()) + len(self.strays),
            calls=sum(c["calls"] for c in counts.values()),
            duplicates=sum(max(0, c["created"] - 1) for c in counts.values()) + len(self.strays),
        )
        return counts

    def settle(
        self,
        emulator: EmulatorHandle,
        external_ids: Iterable[str],
        created: int = 1,
        organizer: str | None = None,
    ) -> dict[str, dict]:
        """Assert the invariant: `created` meetings (default 1) for each externalId, and
        none for the organizer under any other externalId."""
        counts = self.observe(emulator, external_ids, organizer)
        assert not self.strays, f"meetings under other externalIds: {self.strays}"
        wrong = {e: c for e, c in counts.items() if c["created"] != created}
        assert not wrong, f"expected {created} meeting(s) per externalId, got {wrong}"
        return counts


class CountingClient(Client):
    """A booking system's client that counts the requests it sends into its Tally."""

    def __init__(self, base_url: str, key: str, tally: Tally) -> None:
        super().__init__(base_url, key)
        self.tally = tally

    def post(self, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        self.tally.count()
        return super().post(body, headers)

    def get(self, booking_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        self.tally.count()
        return super().get(booking_id, headers)


def render_table(rows: list[Row]) -> list[str]:
    header = ("fault", "requests sent", "bookings", "meetings created", "createOrGet calls",
              "PATCH calls", "duplicates", "options in effect")  # fmt: skip
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        patches = "—" if r.patches is None else r.patches
        in_effect = "—" if r.options_in_effect is None else ("yes" if r.options_in_effect else "no")
        cells = (r.fault, r.sent, r.bookings, r.created, r.calls, patches, r.duplicates, in_effect)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines
