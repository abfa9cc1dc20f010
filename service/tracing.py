"""OpenTelemetry traces: the SDK's provider and exporter, and the instrumentations of the
libraries a request goes through (Flask, redis-py, requests), set up once per worker.

Off unless Settings.tracing (OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint). The SDK reads
its OTEL_* variables itself (service.config declares the ones the README lists): the
exporter its endpoint, headers and timeout, the provider its sampler, the batch processor
its delays, the resource its attributes and service name. Only the default service name is
ours.

gunicorn forks its workers from a master that never builds the app (no preload), and each
worker calls `start` from create_app: the provider, the batch processor's export thread
and the exporter's connections belong to the worker that made them. `shutdown` (gunicorn's
worker_exit hook) exports what is left before the worker ends.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flask import Flask

from service.config import OTEL_SERVICE_NAME, Settings

# The trace SDK, the OTLP exporter (with protobuf) and the instrumentations are imported only
# when tracing is on: every worker imports this module (app, gunicorn_conf), and with
# tracing off they would only take memory (about 4 MiB and 120 modules a worker). The
# OpenTelemetry API the rest of the service uses is light, and a no-op without them.
if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

# The platform endpoints: probes and scrapes every few seconds would drown the traces.
# Regular expressions searched in the URL, as the Flask instrumentation takes them.
UNTRACED = "/healthz$,/readyz$,/metrics$,/openapi.yaml$"

_lock = threading.Lock()
_provider: TracerProvider | None = None


def start(settings: Settings) -> bool:
    """Install the provider and the library instrumentations once in this process, when
    tracing is on; True if it is on."""
    global _provider
    if not settings.tracing:
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from service.graph import attempt_spans
    from service.storage import redis_spans

    with _lock:
        if _provider is None:
            _provider = TracerProvider(resource=_resource())
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(_provider)
            RedisInstrumentor().instrument(
                tracer_provider=_provider, request_hook=redis_spans.request_hook
            )
            RequestsInstrumentor().instrument(
                tracer_provider=_provider,
                request_hook=attempt_spans.request_hook,
                response_hook=attempt_spans.response_hook,
            )
    return True


def instrument(app: Flask, settings: Settings) -> None:
    """A server span per request, continuing the caller's W3C traceparent, except for the
    platform endpoints."""
    if start(settings):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        # instrument_app has no type hints (opentelemetry-instrumentation-flask 0.66b2).
        FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
            app, tracer_provider=_provider, excluded_urls=UNTRACED
        )


def shutdown() -> None:
    """Export the spans still queued and stop the export thread (a worker's exit)."""
    with _lock:
        if _provider is not None:
            _provider.shutdown()


def _resource() -> Resource:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), with our service
    name where neither names one: the SDK's own default would be `unknown_service`."""
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    ours = Resource.create({SERVICE_NAME: OTEL_SERVICE_NAME.default})
    return ours.merge(OTELResourceDetector().detect())
