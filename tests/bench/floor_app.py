"""The floor of our own stack: the least a replay can cost with Flask, gunicorn and redis-py.

POST /v1/meetings reads the body's bookingId, finds the caller by the SHA-256 of its bearer
key in a dict, does one Redis GET of the key the service reads (service.storage.keys.booking) and
answers the stored text as application/json, 200; GET /v1/meetings/<id> likewise. It reads
the records the service stored (same CLIENTS_FILE and REDIS_URL), under the service's
gunicorn settings: `gunicorn -c python:service.gunicorn_conf tests.bench.floor_app:app`.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, request

from service.config import parse_redis_url
from service.domain.callers import key_digest, load_callers
from service.storage import keys, redis_client

REDIS_TIMEOUT_SECONDS = 0.5  # the service's default REDIS_TIMEOUT_SECONDS

app = Flask(__name__)
callers_by_digest = {
    caller.key_sha256: caller.id
    for caller in load_callers(Path(os.environ["CLIENTS_FILE"])).values()
    if caller.key_sha256 is not None
}
redis = redis_client.build(parse_redis_url(os.environ["REDIS_URL"]), REDIS_TIMEOUT_SECONDS)


def caller_id() -> str | None:
    scheme, _, api_key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return callers_by_digest.get(key_digest(api_key))


def stored(booking_id: object) -> Response:
    caller = caller_id()
    if caller is None:
        return Response(status=401)
    if not isinstance(booking_id, str):
        return Response(status=400)
    record = redis.get(keys.booking(caller, booking_id))
    if record is None:
        return Response(status=404)
    return Response(record, status=200, mimetype="application/json")


@app.post("/v1/meetings")
def replay() -> Response:
    body = request.get_json(silent=True)
    return stored(body.get("bookingId") if isinstance(body, dict) else None)


@app.get("/v1/meetings/<booking_id>")
def read(booking_id: str) -> Response:
    return stored(booking_id)


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")
