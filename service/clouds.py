"""The Microsoft national clouds: where Entra ID and Graph live in each.

Tokens are not interchangeable between clouds, so the authority host, the Graph root and
the token scope (`<graph root>/.default`) must all come from the same row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    graph_root: str
    beta: bool  # createOrGet is published in /beta only in the global cloud


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
        ),
    )
}
