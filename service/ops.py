"""Endpoints for the platform: liveness, readiness, metrics and the API document."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from service import metrics
from service.errors import StoreUnavailable
from service.schemas import LivenessSchema, ReadinessSchema
from service.wiring import services

blp = Blueprint("operations", __name__, description="Health, metrics and the API document")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, LivenessSchema)
    def get(self) -> Any:
        """Liveness: the process answers. Touches neither Redis nor Graph"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema, description="Ready to serve")
    @blp.alt_response(503, schema=ReadinessSchema, description="A check is failing")
    def get(self) -> Any:
        """Readiness: configuration loaded and Redis answering"""
        checks: dict[str, dict[str, str]] = {
            # The app only exists once the configuration was valid.
            "config": {"status": "ok"},
        }
        try:
            services().store.ping()
            checks["redis"] = {"status": "ok"}
        except StoreUnavailable:
            checks["redis"] = {"status": "failing", "detail": "Redis does not answer"}
        ready = all(check["status"] == "ok" for check in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return body, 200 if ready else 503


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(responses={"200": {"description": "Prometheus text exposition format"}})
    def get(self) -> Response:
        """Prometheus metrics of all workers of this instance"""
        payload, content_type = metrics.render()
        return Response(payload, content_type=content_type)


@blp.route("/openapi.yaml")
class OpenApiDocument(MethodView):
    @blp.doc(responses={"200": {"description": "This API's OpenAPI document (YAML)"}})
    def get(self) -> Response:
        """This document"""
        return Response(current_app.extensions["openapi-yaml"], mimetype="application/yaml")
