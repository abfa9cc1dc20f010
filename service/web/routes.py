"""The HTTP surface: the API's and the operations' routes under flask-smorest, with every
error rendered (and documented) as problem+json.

Needs no settings, so the OpenAPI document can be built without a configured environment
(`python -m service.openapi`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from service.config import CALLER_APP_ROLE
from service.web import booking_api as api
from service.web import operations_api as ops
from service.web import problems
from service.web.schemas import ProblemSchema

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
                    "(CLIENTS_FILE); they are not OAuth tokens. Accepted when CALLER_AUTH is "
                    "`keys` (the default) or `both`.",
                },
                "entraToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An Entra ID access token of the calling app (client "
                    "credentials, scope `<CALLER_TOKEN_AUDIENCE>/.default`), carrying the app "
                    f"role CALLER_APP_ROLE (default `{CALLER_APP_ROLE.default}`): `Authorization: "
                    "Bearer <token>`. Accepted when CALLER_AUTH is `entra` or `both`.",
                },
            },
        },
        # Every operation needs a key or a token unless it says otherwise (the ops endpoints
        # do).
        "security": [{"apiKeyBearer": []}, {"entraToken": []}],
    },
}


class ProblemApi(Api):
    """flask-smorest's Api, with its errors rendered and documented as problem+json."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: Any) -> Any:
        return problems.from_http_exception(error)


def register_api(app: Flask) -> ProblemApi:
    """Routes and the OpenAPI document on `app`."""
    app.config.update(API_CONFIG)
    smorest = ProblemApi(app)
    smorest.register_blueprint(api.blp)
    smorest.register_blueprint(ops.blp)
    problems.register(app)
    return smorest
