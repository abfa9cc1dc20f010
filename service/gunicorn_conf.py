"""gunicorn settings, from the environment: `gunicorn -c python:service.gunicorn_conf`.

The worker timeout must exceed the longest request the service allows itself (single-
flight wait + token + Graph budgets); service.config refuses to start otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(float(os.environ.get("GUNICORN_TIMEOUT", "60")))
graceful_timeout = int(float(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30")))
keepalive = 5
# Our own JSON request log (service.observability) replaces gunicorn's access log.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn 24+ opens a control socket under $HOME; we do not use it, several masters on one
# host would share its path, and the container's root filesystem is read-only.
control_socket_disable = True
# No request may carry a head bigger than this; bodies are limited by MAX_BODY_BYTES.
limit_request_field_size = 8190


def on_starting(server: Any) -> None:
    """Start every master with an empty metrics directory: stale files of dead processes
    from an earlier run would otherwise be summed into the counters."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
