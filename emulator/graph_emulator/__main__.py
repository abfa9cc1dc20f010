"""Command line: ``python -m graph_emulator --config FILE --state-dir DIR [...]``."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path

from .app import create_app
from .clouds import DEFAULT_AUDIENCE
from .config import ConfigError, load_config
from .redis_front import RedisFront, TokenVerifier
from .server import serve
from .state import EXTENSION_KEY, REDIS_FRONT_KEY
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
    parser.add_argument(
        "--redis-backend-port",
        type=int,
        action="append",
        default=[],
        help="serve a Redis that insists on this emulator's Entra ID tokens, in front of the "
        "redis-server on this loopback port (which gets a password only the front knows); "
        "repeat it for each node of a Redis Cluster (each gets a front, on a free port)",
    )
    parser.add_argument(
        "--redis-front-port",
        type=int,
        default=0,
        help="the (first) Redis front's port; 0: any free one",
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
    announced: dict[str, object] = {}
    if args.redis_backend_port:
        state = app.extensions[EXTENSION_KEY]
        password = secrets.token_urlsafe(24)
        fronts = [
            RedisFront(
                backend_port=backend_port,
                ssl_context=context,
                verifier=TokenVerifier(state.tokens.jwks),
                host=args.host,
                port=args.redis_front_port if index == 0 else 0,
                password=password,
            )
            for index, backend_port in enumerate(args.redis_backend_port)
        ]
        app.extensions[REDIS_FRONT_KEY] = fronts
        announced["redisFrontPorts"] = [front.start() for front in fronts]
        announced["redisFrontPort"] = fronts[0].port
        # Only for the tests and the demo, which read Redis directly: written next to ca.pem.
        password_file = args.state_dir / "redis-backend-password"
        password_file.touch(mode=0o600)
        password_file.write_text(password, encoding="utf-8")
        announced["redisBackendPasswordFile"] = str(password_file.resolve())
    serve(app, args.host, args.port, context, args.state_dir.resolve(), audience, announced)
    return 0


if __name__ == "__main__":
    sys.exit(main())
