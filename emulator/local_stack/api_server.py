"""The service's API under gunicorn, started as the image starts it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any

# The image's entry point (see the Dockerfile), run by this interpreter.
GUNICORN_COMMAND = (
    sys.executable,
    "-m",
    "gunicorn",
    "-c",
    "python:service.gunicorn_conf",
    "service.wsgi:app",
)


def start_gunicorn(env: Mapping[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """gunicorn with the service, configured by `env` (GUNICORN_BIND and the rest)."""
    return subprocess.Popen(list(GUNICORN_COMMAND), env=env, **popen)
