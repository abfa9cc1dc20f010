"""`make run`: serve the API locally.

With AZURE_TENANT_ID, AZURE_CLIENT_ID, REDIS_URL and CLIENTS_FILE set (and one credential),
it serves against that tenant and Redis. Otherwise it starts a local redis-server and the
Graph emulator under .run/, makes a demo caller with a fresh API key, and prints a curl
line to try it. Everything it starts listens on 127.0.0.1 and stops with it (Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

STATE = Path(".run")
REAL_TENANT_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "REDIS_URL", "CLIENTS_FILE")
DEMO_ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"


def gunicorn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    return subprocess.Popen([*command, "service.wsgi:app"], env=env)


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
            "service.emulator",
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
        "GUNICORN_BIND": f"127.0.0.1:{port}",
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
        server = gunicorn(env)
        processes.insert(0, server)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            return server.wait()
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
