"""`make run`: serve the API locally.

With AZURE_TENANT_ID, AZURE_CLIENT_ID, REDIS_URL and CLIENTS_FILE set (and one credential),
it serves against that tenant and Redis. Otherwise it starts a local redis-server and the
Graph emulator under .run/, makes a demo caller with a fresh API key and an Entra app of
its own (whose caller tokens the emulator mints; the service takes both, CALLER_AUTH=both),
and prints curl lines to try each. Either way the API is served as in the pod: nginx on
PORT (default 8080) in front of gunicorn on an internal loopback port, with the proxy
configuration of deploy/base/proxy/ rendered into .run/nginx/. Everything it starts
listens on 127.0.0.1 and stops with it (Ctrl-C).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from local_stack.api_server import service_environment, start_gunicorn
from local_stack.clients import (
    CALLER_API_URI,
    CALLER_APP_ROLE,
    Caller,
    caller_token_settings,
    with_caller_apps,
    write_clients_file,
)
from local_stack.emulator import EmulatorProcess
from local_stack.processes import (
    StackError,
    accepts,
    free_port,
    stop_process,
    wait_for_start,
)
from local_stack.proxy import proxy_values, start_proxy
from local_stack.redis_server import RedisServer

STATE = Path(".run")
REAL_TENANT_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "REDIS_URL", "CLIENTS_FILE")
DEMO_ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"


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
    # With an append-only file, so the demo's bookings outlive a restart.
    redis = RedisServer(STATE / "redis", redis_port, persistent=True, quiet=False).launch()
    assert redis.process is not None
    processes.append(redis.process)

    tenant, client_id, client_secret = (
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        secrets.token_urlsafe(24),
    )
    api_key = secrets.token_urlsafe(32)
    # The demo caller's Entra app (Meetings.Provision), and the service's own app.
    demo = Caller(
        "demo", api_key, ["*"], app_id=str(uuid.uuid4()), app_secret=secrets.token_urlsafe(24)
    )
    api_client_id = str(uuid.uuid4())
    config = with_caller_apps(
        emulator_config(tenant, client_id, client_secret), api_client_id, [demo]
    )
    # DEMO_REDIS_AUTH=entra: the service logs in to Redis with Entra ID tokens of the
    # emulator (REDIS_AUTH=entra), through the emulator's TLS front that insists on them
    # (graph_emulator.redis_front), with tokens of DEMO_REDIS_TOKEN_LIFETIME seconds.
    entra = os.environ.get("DEMO_REDIS_AUTH", "password").lower() == "entra"
    if entra:
        config["redisTokenLifetimeSeconds"] = int(os.environ.get("DEMO_REDIS_TOKEN_LIFETIME", "60"))
    emulator = EmulatorProcess.start(
        config,
        STATE / "emulator-config.json",
        STATE / "emulator",
        port=int(os.environ.get("DEMO_EMULATOR_PORT", "0")),
        redis_backend_port=redis_port if entra else None,
    )
    processes.append(emulator.process)
    redis_settings = {"REDIS_URL": redis.url}
    if entra:
        redis_settings = {
            "REDIS_URL": f"rediss://127.0.0.1:{emulator.redis_front_port}/0",
            "REDIS_AUTH": "entra",
            "REDIS_CA_BUNDLE": emulator.ca_bundle,
        }

    clients_path = write_clients_file(STATE / "clients.json", [demo])
    port = os.environ.get("PORT", "8080")
    print(
        f"\nDemo stack: Graph emulator at {emulator.base_url}, Redis at 127.0.0.1:{redis_port}"
        + (f" behind the Entra-only TLS front at {redis_settings['REDIS_URL']}" if entra else "")
        + ".\n"
        f"Demo API key (caller 'demo'): {api_key}\n\nTry:\n"
        f"  curl -s -X POST http://127.0.0.1:{port}/v1/meetings \\\n"
        f"    -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"bookingId": "demo-1", "organizerId": "{DEMO_ORGANIZER}", '
        '"subject": "Demo"}\'\n'
        f"\nOr with an Entra ID caller token of the demo app ({demo.app_id}, app role "
        f"{CALLER_APP_ROLE}), from the emulator's token endpoint:\n"
        f"  TOKEN=$(curl -s --cacert {emulator.ca_bundle} \\\n"
        f"    {emulator.authority_host}/{tenant}/oauth2/v2.0/token \\\n"
        f"    -d grant_type=client_credentials -d client_id={demo.app_id} \\\n"
        f"    -d client_secret={demo.app_secret} -d scope={CALLER_API_URI}/.default \\\n"
        "    | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"  curl -s -X POST http://127.0.0.1:{port}/v1/meetings \\\n"
        "    -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"bookingId": "demo-2", "organizerId": "{DEMO_ORGANIZER}", '
        '"subject": "Demo"}\'\n',
        flush=True,
    )
    return service_environment(
        emulator,
        tenant,
        client_id,
        redis.url,
        clients_path,
        AZURE_CLIENT_SECRET=client_secret,
        **caller_token_settings(api_client_id),
        **redis_settings,
    )


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
        upstream = f"127.0.0.1:{os.environ.get('DEMO_GUNICORN_PORT') or free_port()}"
        env["GUNICORN_BIND"] = upstream
        server = start_gunicorn(env)
        processes.insert(0, server)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        values = proxy_values(STATE / "nginx", f"127.0.0.1:{port}", upstream, env)
        proxy = start_proxy(STATE / "nginx", values)
        processes.insert(0, proxy)
        wait_for_start(proxy, lambda: accepts(port), f"nginx on 127.0.0.1:{port}")
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
    except StackError as error:
        sys.exit(str(error))
    finally:
        for process in processes:
            stop_process(process, 15)
