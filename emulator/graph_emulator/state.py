"""The emulator's in-memory state, shared by the Entra, Graph and admin endpoints.

Every component guards itself with the same re-entrant lock, so the state as a whole
is protected by one lock, and no component can deadlock against another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import current_app

from .config import CallerApi, EmulatorConfig
from .directory import Directory
from .faults import FaultPlan
from .meetings import MeetingStore
from .stats import Stats
from .tokens import TokenIssuer

EXTENSION_KEY = "graph_emulator"
# The Redis front (graph_emulator.redis_front), when the emulator serves one.
REDIS_FRONT_KEY = "graph_emulator.redis_front"


@dataclass(frozen=True)
class EmulatorState:
    audience: str
    directory: Directory
    tokens: TokenIssuer
    meetings: MeetingStore
    faults: FaultPlan
    stats: Stats
    caller_api: CallerApi | None = None
    redis_token_lifetime: int = 3600

    @classmethod
    def from_config(cls, config: EmulatorConfig, audience: str) -> EmulatorState:
        lock = threading.RLock()
        return cls(
            audience=audience,
            directory=Directory(config, lock),
            tokens=TokenIssuer(
                audience, config.token_lifetime_seconds, lock, config.refresh_in_seconds
            ),
            meetings=MeetingStore(lock),
            faults=FaultPlan(lock),
            stats=Stats(lock),
            caller_api=config.caller_api,
            redis_token_lifetime=config.redis_token_lifetime_seconds,
        )

    def reset(self) -> None:
        """Forget meetings, stats, faults and rate limits (users and tokens stay)."""
        self.meetings.clear()
        self.stats.clear()
        self.faults.clear()


def current_state() -> EmulatorState:
    state: EmulatorState = current_app.extensions[EXTENSION_KEY]
    return state
