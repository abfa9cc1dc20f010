"""The v1 issuer of callers' tokens follows the cloud (GRAPH_CLOUD): sts.windows.net in the
global and US Government clouds, sts.chinacloudapi.cn in the China cloud; v2 tokens carry
`<authority host>/<tenant>/v2.0`. Checked with CallerTokens.claims and keys of our own."""

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service.foundation.clouds import CLOUDS
from service.identity.caller_tokens import CallerTokens, Unauthenticated

pytestmark = pytest.mark.unit

TENANT = str(uuid.uuid4())
AUDIENCE = "api://meeting-provisioning"
KID = "k1"
PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OneKey:
    """SigningKeys' interface with one RSA key of `TENANT`."""

    def key(self, tenant_id: str, kid: str) -> jwt.PyJWK | None:
        if tenant_id != TENANT or kid != KID:
            return None
        return jwt.PyJWK.from_dict(
            {
                **jwt.algorithms.RSAAlgorithm.to_jwk(PRIVATE_KEY.public_key(), as_dict=True),
                "kid": KID,
                "alg": "RS256",
            }  # fmt: skip
        )


def validator(cloud: str) -> CallerTokens:
    return CallerTokens(
        keys=OneKey(),  # type: ignore[arg-type]
        authority_host=CLOUDS[cloud].authority_host,
        audiences=(AUDIENCE,),
        tenants=(TENANT,),
        role="Meetings.Provision",
        v1_issuer_host=CLOUDS[cloud].v1_issuer_host,
    )


def token(issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": AUDIENCE, "tid": TENANT, "exp": now + 600, "nbf": now - 10,
        "appid": str(uuid.uuid4()), "roles": ["Meetings.Provision"], "idtyp": "app",
    }  # fmt: skip
    return jwt.encode(claims, PRIVATE_KEY, algorithm="RS256", headers={"kid": KID})


@pytest.mark.parametrize(
    ("cloud", "v1_issuer"),
    [
        ("global", f"https://sts.windows.net/{TENANT}/"),
        ("usgov", f"https://sts.windows.net/{TENANT}/"),
        ("dod", f"https://sts.windows.net/{TENANT}/"),
        ("china", f"https://sts.chinacloudapi.cn/{TENANT}/"),
    ],
)
def test_each_cloud_accepts_its_v1_and_v2_issuers(cloud, v1_issuer):
    tokens = validator(cloud)
    assert tokens.claims(token(v1_issuer))["iss"] == v1_issuer
    v2_issuer = f"{CLOUDS[cloud].authority_host}/{TENANT}/v2.0"
    assert tokens.claims(token(v2_issuer))["iss"] == v2_issuer


@pytest.mark.parametrize(
    ("cloud", "foreign_issuer"),
    [
        ("global", f"https://sts.chinacloudapi.cn/{TENANT}/"),
        ("china", f"https://sts.windows.net/{TENANT}/"),
        ("global", f"https://login.chinacloudapi.cn/{TENANT}/v2.0"),
        ("global", f"https://sts.windows.net/{uuid.uuid4()}/"),
    ],
)
def test_an_issuer_of_another_cloud_or_tenant_is_refused(cloud, foreign_issuer):
    with pytest.raises(Unauthenticated):
        validator(cloud).claims(token(foreign_issuer))
