"""service.graph.call_token.claims_challenge: the claims of a CAE claims challenge in a
Graph 401's WWW-Authenticate, in the forms Graph and our emulator write it, and nothing
from a header that carries none."""

import base64
import json

import pytest

from service.graph.call_token import claims_challenge

pytestmark = pytest.mark.unit

# As Graph (and the emulator) asks for a token issued after the revocation.
CLAIMS = json.dumps(
    {"access_token": {"nbf": {"essential": True, "value": "1700000000"}}}, separators=(",", ":")
)


def challenge(encoded: str, error: str = "insufficient_claims") -> str:
    return (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2'
        f'/authorize", client_id="00000003-0000-0000-c000-000000000000", error="{error}", '
        f'claims="{encoded}"'
    )


def test_the_claims_of_a_revoked_token():
    assert claims_challenge(challenge(base64.b64encode(CLAIMS.encode()).decode())) == CLAIMS


def test_standard_base64_with_plus_slash_and_padding():
    raw = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}},"x":"~?>"}'
    encoded = base64.b64encode(raw.encode()).decode()
    assert "+" in encoded and encoded.endswith("=")
    assert claims_challenge(challenge(encoded)) == raw


def test_url_safe_base64_without_padding():
    raw = '{"access_token":{"xms_cc":{"values":["cp1"]}},"n":"~~~>>>???"}'
    encoded = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    assert "-" in encoded or "_" in encoded
    assert claims_challenge(challenge(encoded)) == raw


def test_names_and_spacing_are_read_loosely():
    encoded = base64.b64encode(CLAIMS.encode()).decode()
    header = f'Bearer ERROR = "Insufficient_Claims", Claims = "{encoded}"'
    assert claims_challenge(header) == CLAIMS


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        'Bearer realm="", error="invalid_token"',
        # Claims, but no insufficient_claims error: not a challenge to answer.
        challenge(base64.b64encode(CLAIMS.encode()).decode(), error="invalid_token"),
        'Bearer error="insufficient_claims"',  # no claims
        'Bearer error="insufficient_claims", claims=""',
        'Bearer error="insufficient_claims", claims="a"',  # not base64
        challenge(base64.b64encode(b"\xff\xfe\xfd").decode()),  # not UTF-8
    ],
)
def test_a_header_without_a_readable_challenge_gives_none(header):
    assert claims_challenge(header) is None
