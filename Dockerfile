# syntax=docker/dockerfile:1
# The meeting-provisioning image: gunicorn (PID 1) serving service.wsgi:app.
#
# Run it behind the buffering proxy, as deploy/ does: an nginx sidecar on the pod's port
# (deploy/base/proxy/nginx.conf.template) and gunicorn on 127.0.0.1:8081 (GUNICORN_BIND in
# deploy/base/settings.env). gunicorn's gthread worker reads a request with a blocking
# socket once its first byte has arrived, so 16 connections that send half a request
# stall all 2 x 8 threads; nginx reads each request whole, within its header and body
# timeouts, before gunicorn sees it (docs/operations.md, "Slow clients and request
# limits"). The default GUNICORN_BIND below serves directly, without that protection: for
# `docker run` on a developer's machine, never exposed to callers.
#
# Stage 1 turns uv.lock's runtime set (no dependency group: none of the test, lint or bench
# tools, nor the emulator) into a hash-pinned requirements file, fetches exactly those
# wheels, hash-checked, and builds the service's own wheel; stage 2 installs them into a
# clean slim image from a bind mount, offline and hash-checked again, so neither the wheels
# nor pip's cache end up in a layer, and nothing that compiles (the slim base has no
# compiler) is in the final image. The image holds the same versions as the tests ran
# against (uv.lock; README, "Dependencies").
# tests/deploy/test_deploy_image.py runs these same RUN steps and the same ENTRYPOINT in
# a fresh virtual environment and compares what it installed with the lock;
# `make check-deploy` lints this file (hadolint, checkov).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock uv-requirements.txt README.md ./
COPY service ./service
# uv itself, hash-checked: the version pyproject.toml requires (uv-requirements.txt).
RUN pip install --no-cache-dir --require-hashes -r uv-requirements.txt \
    && uv export --frozen --no-default-groups --no-emit-workspace --format requirements-txt --output-file /wheels/requirements.txt \
    && pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r /wheels/requirements.txt \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    GUNICORN_BIND=0.0.0.0:8080
# --no-index: only the wheels fetched above; --require-hashes: each one is the file the lock
# names. The service's own wheel, built here, has no locked hash: --no-deps, its
# dependencies are all in the line before.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes -r /wheels/requirements.txt \
    && pip install --no-cache-dir --no-index --no-deps /wheels/meeting_provisioning-*.whl \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
# A fixed numeric UID/GID, so Kubernetes can check runAsNonRoot and match runAsUser/fsGroup.
USER 10001:10001
EXPOSE 8080
# For `docker run`; Kubernetes ignores it and uses the probes in deploy/base/deployment.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GUNICORN_BIND', ':8080').rsplit(':', 1)[1] + '/healthz', timeout=4)"]
# gunicorn is PID 1 (exec form: it receives SIGTERM itself). Its settings come from the
# environment through service/gunicorn_conf.py: workers, threads, timeout above the Graph
# budget, graceful_timeout, the pre-stop delay, and a wiped PROMETHEUS_MULTIPROC_DIR.
# gunicorn's own access log stays off (accesslog = None) on purpose: the service writes
# one JSON access line per request to stdout itself (service/observability.py).
ENTRYPOINT ["gunicorn", "-c", "python:service.gunicorn_conf", "service.wsgi:app"]
