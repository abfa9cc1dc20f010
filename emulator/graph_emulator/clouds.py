"""What differs between Microsoft clouds, keyed by the Graph audience the emulator plays.

Run with ``--graph-audience https://graph.microsoft.us`` the emulator answers like
GCC High: its discovery document names that cloud and its join links point at that
cloud's Teams host. Unknown audiences fall back to the global cloud's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_AUDIENCE = "https://graph.microsoft.com"


@dataclass(frozen=True)
class Cloud:
    instance_name: str  # discovery's cloud_instance_name
    teams_host: str  # host of joinWebUrl


_CLOUDS = {
    "graph.microsoft.com": Cloud("microsoftonline.com", "teams.microsoft.com"),
    "graph.microsoft.us": Cloud("microsoftonline.us", "gov.teams.microsoft.us"),
    "dod-graph.microsoft.us": Cloud("microsoftonline.us", "dod.teams.microsoft.us"),
    "microsoftgraph.chinacloudapi.cn": Cloud(
        "partner.microsoftonline.cn", "teams.microsoftonline.cn"
    ),
}


def cloud_for(audience: str) -> Cloud:
    return _CLOUDS.get(urlsplit(audience).hostname or "", _CLOUDS["graph.microsoft.com"])


def graph_host(audience: str) -> str:
    return urlsplit(audience).hostname or audience
