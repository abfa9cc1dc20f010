"""The one pooled HTTP session per process, shared by the token and Graph clients."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class PinnedSession(requests.Session):
    """A session whose TLS trust is the one we configured, whatever the environment says.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `Session.verify` (they are
    merged in as per-request settings, which win). On machines that set those variables a
    private CA, such as the emulator's, would be silently ignored, so we pin it here.
    Proxies and other environment settings are still honoured.
    """

    def __init__(self, ca_bundle: Path | None, default_timeout: float | tuple[float, float]):
        super().__init__()
        self.pinned_verify: bool | str = str(ca_bundle) if ca_bundle else True
        self.verify = self.pinned_verify
        self.default_timeout = default_timeout

    def merge_environment_settings(
        self,
        url: Any,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.pinned_verify is not True:
            settings["verify"] = self.pinned_verify
        return settings

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        # MSAL calls us without a timeout; no call of ours may wait forever.
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def build_session(
    ca_bundle: Path | None,
    default_timeout: float | tuple[float, float],
    pool_size: int = 32,
    headers: Mapping[str, str] | None = None,
) -> PinnedSession:
    session = PinnedSession(ca_bundle, default_timeout)
    # Retries are ours (service.graph.client), with a budget; urllib3's own would hide them.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(headers or {})
    return session
