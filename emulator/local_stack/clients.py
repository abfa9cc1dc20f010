"""The callers' file the service reads (CLIENTS_FILE): who may call, with which key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Caller:
    id: str
    key: str
    organizers: list[str]
    # Meeting options for every booking of this caller (the service's `defaultOptions`).
    default_options: dict[str, Any] = field(default_factory=dict)


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
                        **({"defaultOptions": c.default_options} if c.default_options else {}),
                    }
                    for c in callers
                ]
            }
        )
    )
    return path
