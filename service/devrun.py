"""`make run`: serve the API locally.

With AZURE_TENANT_ID, AZURE_CLIENT_ID, REDIS_URL and CLIENTS_FILE set (and one credential),
it serves against that tenant and Redis. Otherwise it starts a local redis-server and the
Graph emulator under .run/, makes a demo caller with a fresh API key, and prints a curl
line to try it. Either way the API is served as in the pod: nginx on PORT (default 8080)
in front of gunicorn on an internal loopback port, with the proxy configuration of
deploy/base/proxy/ rendered into .run/nginx/. Everything it starts listens on 127.0.0.1
and stops with it (Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.config import ServerSettings, Settings

STATE = Path(".run")
# The proxy's one configuration, shared with the tests and the pod (deploy/base/proxy/).
PROXY_DIR = Path(__file__).resolve().parents[1] / "deploy" / "base" / "proxy"
PROXY_TEMPLATE = PROXY_DIR / "nginx.conf.template"
PROXY_SETTINGS = PROXY_DIR / "proxy.env"
# Placeholders of the template, as envsubst substitutes them in the pod: ${NAME}.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
REAL_TENANT_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "REDIS_URL", "CLIENTS_FILE")
DEMO_ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"


def gunicorn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    return subprocess.Popen([*command, "service.wsgi:app"], env=env)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (comments and blank lines skipped), as kustomize's `envs:` reads them."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def proxy_placeholders(template: str | None = None) -> set[str]:
    """The names the proxy template needs."""
    return set(PLACEHOLDER.findall(template or PROXY_TEMPLATE.read_text()))


def render_proxy_config(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with each ${NAME} replaced, as `envsubst '${NAME} ...'` does in the pod;
    every placeholder must have a value."""
    text = template or PROXY_TEMPLATE.read_text()
    missing = proxy_placeholders(text) - set(values)
    if missing:
        raise KeyError(f"no value for {sorted(missing)} in the proxy template")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def proxy_values(
    state_dir: Path, listen: str, upstream: str, env: Mapping[str, str], **overrides: str
) -> dict[str, str]:
    """Values for the template outside the pod: proxy.env's, the service's settings from
    `env` (or their defaults), and where to listen, proxy to and keep state."""
    defaults = {name: str(f.default) for name, f in Settings.__dataclass_fields__.items()}
    return {
        **read_env_file(PROXY_SETTINGS),
        # nginx takes whole seconds; gunicorn_conf.py rounds the same way.
        "GUNICORN_TIMEOUT": str(int(ServerSettings.from_env(env).worker_timeout)),
        "MAX_BODY_BYTES": env.get("MAX_BODY_BYTES", defaults["max_body_bytes"]),
        "PROXY_LISTEN": listen,
        "PROXY_STATE_DIR": str(state_dir.resolve()),
        "GUNICORN_BIND": upstream,
        **overrides,
    }


def nginx_executable() -> str:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    executable = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if executable is None:
        sys.exit("nginx is missing: apt-get install nginx (make run tries it)")
    return executable


def start_proxy(
    state_dir: Path, values: Mapping[str, str], **popen: Any
) -> subprocess.Popen[bytes]:
    """nginx with the rendered template in `state_dir`, in the foreground (daemon off), as
    the current user; `-e stderr` before the configuration names its own error log."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "nginx.conf"
    config.write_text(render_proxy_config(values))
    command = [nginx_executable(), "-c", str(config.resolve()), "-e", "stderr"]
    return subprocess.Popen(command, **popen)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{what} did not start (see its output above)")
            time.sleep(0.1)


def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{what} did not start (see its output above)")
        time.sleep(0.1)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is missing: apt-get install redis-server (make run tries it)")
    directory = STATE / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            executable,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )


def emulator_config(tenant: str, client_id: str, secret: str) -> dict[str, Any]:
    return {
        "tenants": [
            {
                "id": tenant,
                "apps": [{"clientId": client_id, "clientSecret": secret}],
                "users": [
                    {
                        "id": DEMO_ORGANIZER,
                        "displayName": "Demo Organizer",
                        "upn": "organizer@demo.example",
                        "accessPolicy": True,
                    }
                ],
                # Any GUID is a licensed user with the access policy granted, so booking
                # systems can try their own organizer ids.
                "anyUser": True,
                "globalAccessPolicy": True,
            }
        ]
    }


def demo_environment(processes: list[subprocess.Popen[bytes]]) -> dict[str, str]:
    STATE.mkdir(exist_ok=True)
    redis_port = int(os.environ.get("DEMO_REDIS_PORT", "6390"))
    processes.append(start_redis(redis_port))

    tenant, client_id, client_secret = (
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        secrets.token_urlsafe(24),
    )
    config_path = STATE / "emulator-config.json"
    config_path.write_text(json.dumps(emulator_config(tenant, client_id, client_secret)))
    ready = STATE / "emulator" / "emulator.json"
    ready.unlink(missing_ok=True)
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graph_emulator",
            "--config",
            str(config_path),
            "--port",
            os.environ.get("DEMO_EMULATOR_PORT", "0"),
            "--state-dir",
            str(ready.parent),
        ]
    )
    processes.append(emulator)
    wait_for_file(ready, emulator, "the Graph emulator")
    endpoints = json.loads(ready.read_text())

    api_key = secrets.token_urlsafe(32)
    clients_path = STATE / "clients.json"
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    clients_path.write_text(
        json.dumps({"clients": [{"id": "demo", "keySha256": digest, "organizers": ["*"]}]})
    )
    port = os.environ.get("PORT", "8080")
    print(
        "\nDemo stack: Graph emulator at {base}, Redis at 127.0.0.1:{redis}.\n"
        "Demo API key (caller 'demo'): {key}\n\nTry:\n"
        "  curl -s -X POST http://127.0.0.1:{port}/v1/meetings \\\n"
        "    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        '    -d \'{{"bookingId": "demo-1", "organizerId": "{org}", '
        '"subject": "Demo"}}\'\n'.format(
            base=endpoints["baseUrl"],
            redis=redis_port,
            key=api_key,
            port=port,
            org=DEMO_ORGANIZER,
        ),
        flush=True,
    )
    return {
        "AZURE_TENANT_ID": tenant,
        "AZURE_CLIENT_ID": client_id,
        "AZURE_CLIENT_SECRET": client_secret,
        "AZURE_AUTHORITY_HOST": endpoints["authorityHost"],
        "GRAPH_BASE_URL": endpoints["baseUrl"],
        "GRAPH_CA_BUNDLE": endpoints["caBundle"],
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CLIENTS_FILE": str(clients_path),
    }


def main() -> int:
    processes: list[subprocess.Popen[bytes]] = []
    # Until gunicorn runs, SIGTERM must still unwind through `finally` and stop the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(STATE.resolve() / "prometheus"))
    try:
        if all(os.environ.get(name) for name in REAL_TENANT_VARIABLES):
            print("Serving against the configured tenant and Redis.", flush=True)
        else:
            env.update(demo_environment(processes))
        # gunicorn only on loopback, behind nginx as in the pod (slow clients, limits).
        port = int(os.environ.get("PORT", "8080"))
        upstream = f"127.0.0.1:{os.environ.get('DEMO_GUNICORN_PORT') or free_loopback_port()}"
        env["GUNICORN_BIND"] = upstream
        server = gunicorn(env)
        processes.insert(0, server)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        values = proxy_values(STATE / "nginx", f"127.0.0.1:{port}", upstream, env)
        proxy = start_proxy(STATE / "nginx", values)
        processes.insert(0, proxy)
        wait_for_port(port, proxy, f"nginx on 127.0.0.1:{port}")
        print(f"Serving on http://127.0.0.1:{port} (nginx) -> {upstream} (gunicorn).", flush=True)
        try:
            while True:  # until gunicorn stops (Ctrl-C, SIGTERM) or either process fails
                for process, name in ((server, "gunicorn"), (proxy, "nginx")):
                    status = process.poll()
                    if status is not None:
                        if process is proxy:
                            print(f"{name} exited with {status}", file=sys.stderr, flush=True)
                            return status or 1
                        return status
                time.sleep(0.2)
        except KeyboardInterrupt:
            return server.wait()
    finally:
        for process in processes:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


if __name__ == "__main__":
    sys.exit(main())
