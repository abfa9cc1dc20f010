"""gunicorn settings, from the environment: `gunicorn -c python:service.gunicorn_conf`.

The worker timeout must exceed the longest request the service allows itself (single-
flight wait + token + Graph budgets); service.config refuses to start otherwise.
"""

from __future__ import annotations

import gc
import shutil
import signal
import time
from typing import Any

from prometheus_client import multiprocess

from service import tracing
from service.config import ServerSettings

# Imported here, in the master, so the shared flag exists before the workers are forked.
from service.foundation import draining
from service.web import gunicorn_errors

# The same parsing and defaults as the workers' Settings (service/config.py).
server_settings = ServerSettings.from_env()
bind = server_settings.bind
workers = server_settings.workers
threads = server_settings.threads
worker_class = "gthread" if threads > 1 else "sync"
# gunicorn takes whole seconds.
timeout = int(server_settings.worker_timeout)
graceful_timeout = int(server_settings.graceful_timeout)
pre_stop_delay = server_settings.pre_stop_delay
metrics_dir = server_settings.metrics_dir
keepalive = 5
# Our own JSON request log (service.web.observability) replaces gunicorn's access log.
accesslog = None
errorlog = "-"
loglevel = server_settings.log_level.lower()
# gunicorn 24+ opens a control socket under $HOME; we do not use it, several masters on one
# host would share its path, and the container's root filesystem is read-only.
control_socket_disable = True
# No request line or header line may be longer than 8190 bytes (gunicorn's maximum for the
# request line; for a header line gunicorn counts its CRLF too, hence 8192). The proxy in
# front (deploy/base/proxy/nginx.conf.template, large_client_header_buffers 8k) lets exactly
# these through, so a caller meets the same limits with or without it. Bodies are limited
# by MAX_BODY_BYTES.
limit_request_line = 8190
limit_request_field_size = 8190 + len("\r\n")


def on_starting(server: Any) -> None:
    """Start every master with an empty metrics directory: stale files of dead processes
    from an earlier run would otherwise be summed into the counters. Also make gunicorn's
    own error answers problem+json (service/web/gunicorn_errors.py); the forked workers inherit
    it."""
    gunicorn_errors.install(server.cfg)
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)


def worker_exit(server: Any, worker: Any) -> None:
    """Export the worker's last spans before it ends (service.tracing; nothing when tracing
    is off)."""
    tracing.shutdown()


def child_exit(server: Any, worker: Any) -> None:
    if metrics_dir is not None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def when_ready(server: Any) -> None:
    """Delay gunicorn's graceful stop by `pre_stop_delay` after SIGTERM.

    Kubernetes removes a terminating pod from its Service's endpoints at the same time as
    it sends SIGTERM; until every node has caught up, new connections still arrive. So on
    SIGTERM the master first only marks the instance as draining (readiness 503) and keeps
    everything serving; when the delay is over it stops as usual: the socket closes and
    in-flight requests get `graceful_timeout` to finish. A second SIGTERM stops at once.
    """
    if pre_stop_delay <= 0:
        return
    stop_at: float | None = None
    murder_workers = server.murder_workers

    def handle_term() -> None:
        nonlocal stop_at
        if stop_at is not None:
            raise StopIteration  # asked twice: stop now
        stop_at = time.monotonic() + pre_stop_delay
        draining.start()
        from service.foundation import metrics

        metrics.draining.set(1)
        server.log.info("SIGTERM: draining for %.1f s before stopping", pre_stop_delay)

    def murder_workers_then_maybe_stop() -> None:
        # The master's loop calls this at least once a second; raising StopIteration here
        # is exactly what gunicorn's own SIGTERM handler does.
        murder_workers()
        if stop_at is not None and time.monotonic() >= stop_at:
            raise StopIteration

    server.handle_term = handle_term
    server.murder_workers = murder_workers_then_maybe_stop


def post_worker_init(worker: Any) -> None:
    """Freeze the app's objects out of the garbage collector's sight, and make a stopping
    gthread worker refuse new connections instead of leaving them unanswered.

    The modules, schemas and routes loaded at startup live as long as the worker; without
    `gc.freeze()` every full collection walks them all again, for nothing.

    On SIGTERM gunicorn's gthread worker stops *accepting* but keeps its copy of the
    listening socket open until its in-flight requests are done, so for up to
    `graceful_timeout` the kernel still completes handshakes that nobody will serve; the
    client hangs, then gets a reset. Closing the socket as soon as the worker stops makes
    the kernel refuse at once (once the master has closed its copy too), and the client
    retries elsewhere. This uses gthread internals of gunicorn 27 (pinned < 28 in
    pyproject); other worker classes keep gunicorn's behaviour.
    """
    gc.freeze()
    queue = getattr(worker, "method_queue", None)
    if queue is None or not hasattr(worker, "set_accept_enabled"):
        return
    handle_exit = worker.handle_exit

    def stop_listening() -> None:  # runs on the worker's main loop, not in the handler
        worker.set_accept_enabled(False)
        for listener in worker.sockets:
            listener.close()

    def handle_exit_and_stop_listening(signum: int, frame: Any) -> None:
        handle_exit(signum, frame)
        queue.defer(stop_listening)

    signal.signal(signal.SIGTERM, handle_exit_and_stop_listening)
