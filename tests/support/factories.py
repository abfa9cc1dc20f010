"""Request bodies for tests, instead of copy-pasted dicts."""

from __future__ import annotations

import uuid
from typing import Any


def booking(organizer_id: str, **fields: Any) -> dict[str, Any]:
    """A valid POST /v1/meetings body with a new bookingId; `fields` override or add."""
    return {"bookingId": f"b-{uuid.uuid4()}", "organizerId": organizer_id, **fields}
