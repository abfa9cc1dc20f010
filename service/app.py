"""The application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from service import api, logs, metrics, observability, openapi, ops, problems
from service.config import Settings
from service.errors import StoreUnavailable
from service.schemas import ProblemSchema
from service.wiring import EXTENSION, Services

API_CONFIG: dict[str, Any] = {
    "API_TITLE": "Meeting provisioning",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.1.0",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Exactly one Microsoft Teams meeting per booking, however often "
            "booking systems retry. Errors are RFC 9457 application/problem+json."
        },
        "components": {
            "securitySchemes": {
                "apiKeyBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The caller's API key as a bearer token: "
                    "`Authorization: Bearer <key>`. Keys are issued by the operators "
                    "(CLIENTS_FILE); they are not OAuth tokens.",
                }
            },
        },
        # Every operation needs the key unless it says otherwise (the ops endpoints do).
        "security": [{"apiKeyBearer": []}],
    },
}


class ProblemApi(Api):
    """flask-smorest's Api, with its errors rendered and documented as problem+json."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: Any) -> Any:
        return problems.from_http_exception(error)


def register_api(app: Flask) -> ProblemApi:
    """Routes and the OpenAPI document; needs no settings, so the document can be built
    without a configured environment (`python -m service.openapi`)."""
    app.config.update(API_CONFIG)
    smorest = ProblemApi(app)
    smorest.register_blueprint(api.blp)
    smorest.register_blueprint(ops.blp)
    problems.register(app)
    return smorest


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    logs.configure(settings.server.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    found = app.extensions[EXTENSION] = Services.from_settings(settings)
    metrics.declare_known_series()
    try:
        # Report Redis's state from the start, not "down" until a first request uses it.
        found.store.ping()
    except StoreUnavailable:
        pass  # logged; the service starts anyway and degrades (see README, Failure modes)
    smorest = register_api(app)
    app.extensions["openapi-yaml"] = openapi.render(smorest)
    observability.register(app)
    return app
