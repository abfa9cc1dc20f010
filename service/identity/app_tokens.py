"""App-only access tokens for Graph, from Entra ID through MSAL (client credentials).

One ConfidentialClientApplication per process: MSAL caches the token in memory and hands
it out until shortly before it expires, so most requests never reach Entra ID.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import msal
import requests

from service.config import Credential, Settings
from service.foundation import metrics
from service.foundation.errors import TokenRejected, TokenUnavailable

logger = logging.getLogger(__name__)

# Entra errors that mean "this app's configuration is wrong": retrying will not help, an
# operator must act. Anything else (throttling, outages) is worth a retry by the caller.
CONFIGURATION_ERRORS = {
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "invalid_request",
    "invalid_grant",
    # The scope names a resource this tenant's cloud does not have: GRAPH_CLOUD is wrong.
    "invalid_resource",
}
SCOPE_ERRORS = {"invalid_scope", "invalid_resource"}
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?"
    r"-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----",
    re.DOTALL,
)
RETRY_AFTER_TOKEN = 5.0
# A token we hold is handed out after a failed refresh only while it has this much life
# left, so Graph does not reject it in the middle of a call.
LAST_GOOD_MARGIN = 120.0


def msal_credential(credential: Credential) -> Any:
    """The `client_credential` argument MSAL expects for our kind of credential."""
    if credential.client_secret is not None:
        return credential.client_secret
    if credential.certificate_path is not None:
        pem = credential.certificate_path.read_text(encoding="ascii")
        key, cert = PEM_PRIVATE_KEY.search(pem), PEM_CERTIFICATE.search(pem)
        if key is None or cert is None:
            raise ValueError(
                f"{credential.certificate_path} must hold a PEM private key and certificate"
            )
        # With the certificate, MSAL computes the thumbprint itself.
        return {"private_key": key.group(0), "public_certificate": cert.group(0)}
    token_file: Path = credential.federated_token_file  # type: ignore[assignment]

    # Re-read on every use: Kubernetes rotates the projected service-account token file.
    def assertion() -> str:
        return token_file.read_text(encoding="utf-8").strip()

    return {"client_assertion": assertion}


class TokenProvider:
    def __init__(
        self,
        *,
        client_id: str,
        authority: str,
        credential: Credential,
        scope: str,
        session: requests.Session,
        cloud: str = "global",
    ) -> None:
        self.client_id = client_id
        self.cloud = cloud
        self.authority = authority
        # Read now, so an unreadable certificate stops the start instead of every request.
        self.client_credential = msal_credential(credential)
        self.scopes = [scope]
        self.session = session
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        # The last token Entra issued and when it expires (time.monotonic()).
        self._last_good: tuple[str, float] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, session: requests.Session) -> TokenProvider:
        return cls(
            client_id=settings.client_id,
            authority=settings.authority,
            credential=settings.credential,
            scope=settings.graph_scope,
            session=session,
            cloud=settings.cloud.name,
        )

    def _application(self) -> msal.ConfidentialClientApplication:
        # Built on first use, not at import: MSAL fetches the tenant's OpenID configuration
        # in its constructor, and a worker must be able to start while Entra ID is away.
        with self._lock:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    authority=self.authority,
                    client_credential=self.client_credential,
                    http_client=self.session,
                    # Our authority is known; instance discovery would be one more round
                    # trip, and it fails for hosts Microsoft does not list (the emulator).
                    instance_discovery=False,
                    # CAE: Graph may then revoke our token before it expires and answer 401
                    # with a claims challenge (service.graph.client), instead of honouring it until
                    # expiry.
                    client_capabilities=["cp1"],
                )
            return self._app

    def token(self, claims_challenge: str | None = None) -> str:
        """A Graph token: MSAL's cached one, a new one, or, when getting a new one fails
        for a passing reason, the last good one while it is still valid.

        MSAL refreshes proactively (from `refresh_in`, half the lifetime for long-lived
        tokens), but when that refresh meets an Entra 5xx it raises instead of falling back
        to the valid token it holds, and then replays that failure from its own cache for
        the Retry-After (5 s without one). Keeping the last good token ourselves turns such
        an outage into a log line instead of failed bookings.

        With `claims_challenge` (the decoded `claims` of a Graph CAE challenge), MSAL skips
        its cache and asks Entra ID for a token satisfying those claims; the last good token
        is then known to be revoked and is never handed out.
        """
        if claims_challenge is not None:
            with self._lock:
                self._last_good = None
            return self._acquire(claims_challenge)
        try:
            return self._acquire()
        except TokenUnavailable:
            last = self._last_good
            remaining = last[1] - time.monotonic() if last else 0.0
            if last is None or remaining < LAST_GOOD_MARGIN:
                raise
            metrics.tokens.labels(source="last_good").inc()
            logger.warning(
                "token refresh failed, using the last token (valid %d s more)", remaining
            )
            return last[0]

    def _acquire(self, claims_challenge: str | None = None) -> str:
        try:
            result = self._application().acquire_token_for_client(
                scopes=self.scopes, claims_challenge=claims_challenge
            )
        except msal.exceptions.MsalServiceError as error:  # Entra answered 5xx
            self._fail("server_error", f"the identity provider failed: {error}")
        except requests.RequestException as error:  # refused, reset or timed out
            self._fail(
                "unreachable", f"the identity provider is unreachable: {type(error).__name__}"
            )
        except ValueError as error:
            # MSAL raises ValueError when it cannot read the tenant's OpenID configuration.
            self._fail("discovery", f"the identity provider's configuration failed: {error}")
        if "access_token" in result:
            metrics.tokens.labels(source=result.get("token_source", "identity_provider")).inc()
            token = str(result["access_token"])
            expires_in = result.get("expires_in")
            if isinstance(expires_in, int | float):
                self._last_good = (token, time.monotonic() + float(expires_in))
            return token
        error_code = str(result.get("error"))
        description = str(result.get("error_description", "")).split("\r\n")[0]
        codes = [int(code) for code in result.get("error_codes", []) if isinstance(code, int)]
        if error_code in CONFIGURATION_ERRORS:
            metrics.token_failures.labels(reason="rejected").inc()
            logger.error("token request rejected: %s %s", error_code, description)
            if error_code in SCOPE_ERRORS:
                detail = (
                    f"Entra ID refused a token for {self.scopes[0]} ({error_code}: "
                    f"{description}). The scope comes from GRAPH_CLOUD (now {self.cloud!r}): "
                    "check that it names the cloud this tenant lives in (global, usgov, dod, "
                    "china), and that AZURE_AUTHORITY_HOST and GRAPH_BASE_URL belong to the "
                    "same cloud."
                )
            else:
                detail = (
                    f"Entra ID rejected this app's credentials ({error_code}: {description}). "
                    "Check AZURE_TENANT_ID, AZURE_CLIENT_ID and the configured credential."
                )
            raise TokenRejected(detail, error_code, codes)
        self._fail(error_code, f"the identity provider answered {error_code}: {description}")

    def _fail(self, reason: str, detail: str) -> NoReturn:
        metrics.token_failures.labels(reason=reason).inc()
        logger.warning("token acquisition failed: %s", detail)
        raise TokenUnavailable(f"Could not get a Graph token: {detail}", RETRY_AFTER_TOKEN)

    def invalidate(self) -> None:
        """Forget cached tokens, after Graph said the one we used is no longer valid."""
        with self._lock:
            app = self._app
            self._last_good = None
        if app is not None:
            app.remove_tokens_for_client()
