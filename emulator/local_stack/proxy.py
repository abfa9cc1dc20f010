"""nginx in front of gunicorn, as in the pod, from the proxy's one template.

deploy/base/proxy/nginx.conf.template is what the pod's sidecar renders with envsubst;
`make run` and the tests render it here the same way (every ${NAME} replaced) and start
nginx with it as the current user, in the foreground.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_stack.processes import StackError
from service.config import MAX_BODY_BYTES, ServerSettings

# The proxy's one configuration, shared with the tests and the pod (deploy/base/proxy/).
REPO = Path(__file__).resolve().parents[2]
PROXY_DIR = REPO / "deploy" / "base" / "proxy"
PROXY_TEMPLATE = PROXY_DIR / "nginx.conf.template"
PROXY_SETTINGS = PROXY_DIR / "proxy.env"
# Placeholders of the template, as envsubst substitutes them in the pod: ${NAME}.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


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
    `env` (or their defaults, as service.config declares them), and where to listen, proxy
    to and keep state."""
    return {
        **read_env_file(PROXY_SETTINGS),
        # nginx takes whole seconds; gunicorn_conf.py rounds the same way.
        "GUNICORN_TIMEOUT": str(int(ServerSettings.from_env(env).worker_timeout)),
        MAX_BODY_BYTES.name: env.get(MAX_BODY_BYTES.name, MAX_BODY_BYTES.default),
        "PROXY_LISTEN": listen,
        "PROXY_STATE_DIR": str(state_dir.resolve()),
        "GUNICORN_BIND": upstream,
        **overrides,
    }


def nginx_executable() -> str:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    executable = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if executable is None:
        raise StackError("nginx is missing: apt-get install nginx (make run and make test try it)")
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
