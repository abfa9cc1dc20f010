"""Command line: ``python -m graph_emulator --config FILE --state-dir DIR [...]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .app import create_app
from .clouds import DEFAULT_AUDIENCE
from .config import ConfigError, load_config
from .server import serve
from .tls import make_server_context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graph_emulator",
        description="Local emulator of Entra ID (client credentials) and Microsoft Graph "
        "onlineMeetings (createOrGet, GET, PATCH, DELETE), over HTTPS with a throw-away CA.",
    )
    parser.add_argument("--config", type=Path, required=True, help="emulator config (JSON)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="where ca.pem and emulator.json go"
    )
    parser.add_argument(
        "--graph-audience",
        default=DEFAULT_AUDIENCE,
        help="the Graph resource played, e.g. https://graph.microsoft.us "
        f"(default {DEFAULT_AUDIENCE})",
    )
    parser.add_argument(
        "--tls-name",
        action="append",
        default=[],
        help="extra host name for the server certificate (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    args.state_dir.mkdir(parents=True, exist_ok=True)
    audience = args.graph_audience.rstrip("/")
    app = create_app(config, graph_audience=audience)
    context = make_server_context(args.state_dir, args.tls_name)
    serve(app, args.host, args.port, context, args.state_dir.resolve(), audience)
    return 0


if __name__ == "__main__":
    sys.exit(main())
