"""The application factory."""

from __future__ import annotations

from flask import Flask

from service import openapi, tracing
from service.config import Settings
from service.foundation import logs, metrics
from service.foundation.errors import StoreUnavailable
from service.web import observability
from service.web import operations_api as ops
from service.web.routes import register_api
from service.wiring import EXTENSION, Services


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    logs.configure(settings.server.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    found = app.extensions[EXTENSION] = Services.from_settings(settings)
    metrics.declare_known_series()
    try:
        # Report Redis's state from the start, not "down" until a first request uses it.
        found.redis.ping()
    except StoreUnavailable:
        pass  # logged; the service starts anyway and degrades (see README, Failure modes)
    smorest = register_api(app)
    app.extensions[ops.OPENAPI_DOCUMENT] = openapi.ServedDocument(smorest)
    observability.register(app)
    tracing.instrument(app, settings)
    return app
