"""The Microsoft national clouds: where Entra ID and Graph live in each.

Tokens are not interchangeable between clouds, so the authority host, the Graph root and
the token scope (`<graph root>/.default`) must all come from the same row.

`v1_issuer_host` is the host of Entra ID's v1 token issuer (`<host>/<tenant id>/`), which a
v1 access token (requestedAccessTokenVersion 1, the default of an app registration) carries
in `iss`: sts.windows.net in the global and US Government clouds, sts.chinacloudapi.cn in
the China cloud (21Vianet). v2 tokens carry `<authority host>/<tenant id>/v2.0` instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    graph_root: str
    beta: bool  # createOrGet is published in /beta only in the global cloud
    v1_issuer_host: str = "https://sts.windows.net"


CLOUDS: dict[str, Cloud] = {
    cloud.name: cloud
    for cloud in (
        Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com", True),
        Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us", False),
        Cloud("dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us", False),
        Cloud(
            "china",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
            False,
            "https://sts.chinacloudapi.cn",
        ),
    )
}
