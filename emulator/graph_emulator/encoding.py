"""base64url without padding (RFC 7515 section 2), as JWTs, JWKS and Teams ids use it."""

from __future__ import annotations

import base64


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
