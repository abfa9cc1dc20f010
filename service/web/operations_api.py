"""Endpoints for the platform: liveness, readiness, metrics and the API document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from service.core.quota import QuotaCollector
from service.foundation import draining, metrics
from service.foundation.errors import StoreUnavailable
from service.graph.breaker import State
from service.web.schemas import LivenessSchema, ReadinessSchema
from service.wiring import services

blp = Blueprint("operations", __name__, description="Health, metrics and the API document")

# Where the app keeps the served document: a Callable[[], str] returning its text (the app
# factory puts a service.openapi.ServedDocument there; this module cannot import
# service.openapi, which imports the routes and so this module).
OPENAPI_DOCUMENT = "openapi-yaml"

# The platform's endpoints need no API key (the API's root `security` does not apply).
NO_KEY: list[dict[str, list[str]]] = []


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, LivenessSchema, description="The process answers")
    @blp.doc(operationId="getLiveness", security=NO_KEY)
    def get(self) -> Any:
        """Liveness: the process answers. Touches neither Redis nor Graph"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema, description="Serving (ready, or degraded)")
    @blp.alt_response(503, schema=ReadinessSchema, description="Shutting down (draining)")
    @blp.doc(operationId="getReadiness", security=NO_KEY)
    def get(self) -> Any:
        """Readiness: 503 only while shutting down; a failing dependency shows as degraded

        A Redis outage or an open Graph circuit affects every replica alike, so failing
        readiness for them would let Kubernetes pull all replicas at once, while the service
        still serves (POST calls Graph directly without Redis) or answers fast 503s that
        callers can act on. They are reported here, and in metrics, instead.
        """
        if draining.is_draining():
            return {"status": "draining", "checks": {}}, 503
        found = services()
        checks: dict[str, dict[str, str]] = {
            # The app only exists once the configuration was valid.
            "config": {"status": "ok"},
        }
        try:
            found.redis.ping()
            checks["redis"] = {"status": "ok"}
        except StoreUnavailable:
            credentials = found.redis_credentials
            problem = credentials.problem if credentials is not None else None
            cause = problem or "Redis does not answer"
            checks["redis"] = {
                "status": "failing",
                "detail": f"{cause}: POST calls Graph directly, GET answers 503",
            }
        if found.graph.breaker.state is State.OPEN:
            checks["graph"] = {
                "status": "failing",
                "detail": "circuit open after repeated Graph failures: POST answers 503",
            }
        else:
            checks["graph"] = {"status": "ok"}
        ok = all(check["status"] == "ok" for check in checks.values())
        return {"status": "ready" if ok else "degraded", "checks": checks}


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        operationId="getMetrics",
        security=NO_KEY,
        responses={
            "200": {
                "description": "Prometheus text exposition format (version 0.0.4)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def get(self) -> Response:
        """Prometheus metrics of all workers of this instance"""
        payload, content_type = metrics.render(
            multiprocess_mode=services().settings.server.metrics_dir is not None,
            extra=[QuotaCollector(services().quota)],
        )
        return Response(payload, content_type=content_type)


@blp.route("/openapi.yaml")
class OpenApiDocument(MethodView):
    @blp.doc(
        operationId="getOpenApiDocument",
        security=NO_KEY,
        responses={
            "200": {
                "description": "This API's OpenAPI 3.1 document (YAML)",
                # No schema: the parsed YAML is this document (an object), while client
                # generators can only hand YAML over as text.
                "content": {"application/yaml": {}},
            }
        },
    )
    def get(self) -> Response:
        """This document"""
        document: Callable[[], str] = current_app.extensions[OPENAPI_DOCUMENT]
        return Response(document(), mimetype="application/yaml")
