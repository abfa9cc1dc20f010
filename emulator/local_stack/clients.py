"""The callers' file the service reads (CLIENTS_FILE): who may call, with which key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Caller:
    id: str
    key: str
    organizers: list[str]


def write_clients_file(path: Path, callers: list[Caller]) -> Path:
    """The file, with each key stored as its SHA-256 only."""
    path.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "id": c.id,
                        "keySha256": hashlib.sha256(c.key.encode()).hexdigest(),
                        "organizers": c.organizers,
                    }
                    for c in callers
                ]
            }
        )
    )
    return path
