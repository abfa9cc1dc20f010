"""The bearer token of one Graph call's attempts, renewed once after a 401: with the claims
of a CAE claims challenge when Graph sent one, else after dropping MSAL's cached token."""

from __future__ import annotations

import base64
import binascii
import re

import requests

from service.graph import telemetry
from service.identity.app_tokens import TokenProvider

# A CAE claims challenge in a Graph 401's WWW-Authenticate (the claims are base64 JSON).
INSUFFICIENT_CLAIMS = re.compile(r'error\s*=\s*"insufficient_claims"', re.IGNORECASE)
CLAIMS = re.compile(r'claims\s*=\s*"([A-Za-z0-9+/=_-]+)"', re.IGNORECASE)


def claims_challenge(www_authenticate: str | None) -> str | None:
    """The decoded claims of a CAE challenge (`Bearer ..., error="insufficient_claims",
    claims="<base64>"`), or None when the header carries none."""
    if not www_authenticate or not INSUFFICIENT_CLAIMS.search(www_authenticate):
        return None
    found = CLAIMS.search(www_authenticate)
    if found is None:
        return None
    encoded = found.group(1)
    try:
        decoded = base64.urlsafe_b64decode(
            encoded.replace("+", "-").replace("/", "_") + "=" * (-len(encoded) % 4)
        ).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded


class CallToken:
    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens
        self.renewed = False
        self._challenge: str | None = None  # to answer with the next token

    def get(self) -> str:
        """The token for the next attempt."""
        challenge, self._challenge = self._challenge, None
        return self.tokens.token(challenge) if challenge else self.tokens.token()

    def renew(self, response: requests.Response | None) -> bool:
        """After a 401: True when the next attempt gets a new token, False when this call
        already had one (a second 401 means something else is wrong).

        The token expired or was revoked before MSAL's cache knew. With a CAE claims
        challenge, the new token is asked for with those claims.
        """
        if self.renewed:
            return False
        self.renewed = True
        self._challenge = claims_challenge(
            response.headers.get("WWW-Authenticate") if response is not None else None
        )
        if self._challenge is not None:
            telemetry.claims_challenge_answered()
        else:
            self.tokens.invalidate()
        return True
