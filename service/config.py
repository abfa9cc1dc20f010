"""Settings, read from the environment once and checked all at once.

Every problem is collected before failing, so an operator fixing a deployment sees the
whole list in one start-up error instead of one problem per restart.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import unquote

from service.domain.callers import Caller, CallerRegistryError, load_callers, parse_rate_limit
from service.foundation.clouds import CLOUDS, Cloud

T = TypeVar("T")

# The default namespace under which externalIds are derived (see README, "Idempotency").
# Changing it changes every externalId, which would create new meetings for old bookings.
DEFAULT_EXTERNAL_ID_NAMESPACE = uuid.UUID("6f1c1d0e-3a51-4f0c-9d7e-4b1f6f0d2a11")

API_VERSIONS = ("v1.0", "beta")

# REDIS_URL's schemes: the names the `limits` library (Flask-Limiter) uses, so operators
# recognise them. Each maps to (topology, TLS).
Topology = Literal["single", "cluster", "sentinel"]
REDIS_SCHEMES: dict[str, tuple[Topology, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
DEFAULT_PORTS: dict[Topology, int] = {"single": 6379, "cluster": 6379, "sentinel": 26379}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# How callers authenticate: API keys from CLIENTS_FILE, Entra ID access tokens, or either.
CALLER_AUTH_MODES = ("keys", "entra", "both")
DEFAULT_CALLER_APP_ROLE = "Meetings.Provision"


class ConfigError(Exception):
    """The environment does not describe a runnable service; `problems` lists why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


@dataclass(frozen=True)
class Credential:
    """How the app proves its identity to Entra ID. Exactly one field is set."""

    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    federated_token_file: Path | None = None

    @property
    def kind(self) -> str:
        if self.client_secret is not None:
            return "secret"
        if self.certificate_path is not None:
            return "certificate"
        return "federated"


@dataclass(frozen=True)
class RedisTarget:
    """Which Redis to reach and how: REDIS_URL parsed, plus the TLS files.

    One node (`redis://`, `rediss://`, `unix://`) keeps the URL as given, for redis-py's own
    `from_url` (its query options keep working); a cluster lists its seed nodes and a
    Sentinel group its sentinels, with the Redis service name and database.
    """

    topology: Topology
    tls: bool
    url: str = field(repr=False)  # may hold the password
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds, or the sentinels
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service_name: str | None = None  # Sentinel: the monitored primary's name
    db: int = 0
    ca_bundle: Path | None = None  # REDIS_CA_BUNDLE: trusted instead of the system's CAs
    client_cert: Path | None = None  # REDIS_CLIENT_CERT / REDIS_CLIENT_KEY: mutual TLS
    client_key: Path | None = None


class RedisUrlError(ValueError):
    """REDIS_URL is not one of the documented forms (the message never holds a password)."""


def parse_redis_url(url: str) -> RedisTarget:
    """REDIS_URL as a RedisTarget; RedisUrlError naming the problem otherwise.

    redis+cluster://[user:password@]host:port[,host:port...]
    redis+sentinel://[user:password@]host:port[,host:port...]/service-name[/db]
    (and rediss+...: TLS); redis://, rediss://, unix:// as redis-py reads them.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise RedisUrlError("is not a URL (expected e.g. redis://host:6379/0)")
    found = REDIS_SCHEMES.get(scheme.lower())
    if found is None:
        raise RedisUrlError(
            f"has the unknown scheme {scheme[:20]!r}; use one of {', '.join(REDIS_SCHEMES)}"
        )
    topology, tls = found
    location, _, path = rest.partition("/")
    if "?" in location or "#" in location:
        location, path = location.split("?", 1)[0].split("#", 1)[0], ""
    userinfo, at, hosts = location.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if topology == "single":
        if scheme.lower() != "unix" and "," in hosts:
            raise RedisUrlError("lists several hosts; for a cluster use redis+cluster://")
        if scheme.lower() != "unix":
            _nodes(hosts, DEFAULT_PORTS[topology])  # a bad port is found here, not later
        return RedisTarget(topology, tls, url, username=username, password=password)
    nodes = _nodes(hosts, DEFAULT_PORTS[topology])
    if "?" in path or "#" in path or "?" in rest:
        raise RedisUrlError("has query options, which cluster and Sentinel URLs do not take")
    parts = [part for part in path.split("/") if part]
    if topology == "cluster":
        if parts and parts != ["0"]:
            raise RedisUrlError("has a database number: a Redis Cluster has only database 0")
        return RedisTarget(topology, tls, url, nodes, username, password)
    if not parts:
        raise RedisUrlError("names no Sentinel service: redis+sentinel://host:port/<service-name>")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise RedisUrlError("must end in /<service-name> or /<service-name>/<db number>")
    db = int(parts[1]) if len(parts) == 2 else 0
    return RedisTarget(topology, tls, url, nodes, username, password, unquote(parts[0]), db)


def _nodes(hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for entry in hosts.split(","):
        entry = entry.strip()
        if entry.startswith("["):  # an IPv6 address: [::1]:6379
            host, _, port = entry[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = entry.partition(":")
        if not host:
            raise RedisUrlError("has an empty host")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise RedisUrlError(f"has the invalid port {port[:10]!r} for host {host[:100]!r}")
        nodes.append((host, int(port) if port else default_port))
    return tuple(nodes)


@dataclass(frozen=True)
class ServerSettings:
    """How the process is served: gunicorn, log level, metrics directory.

    gunicorn's master reads these on their own (service/gunicorn_conf.py), before any worker
    builds the full Settings, which hold the same object read by the same rules.
    """

    bind: str = "0.0.0.0:8080"
    workers: int = 2
    threads: int = 8
    worker_timeout: float = 60.0
    graceful_timeout: float = 30.0
    # Seconds between SIGTERM and closing the listening socket, while /readyz answers 503.
    pre_stop_delay: float = 0.0
    log_level: str = "INFO"
    # Where prometheus-client's multiprocess mode keeps the workers' values.
    metrics_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        reader = _Reader(os.environ if env is None else env)
        server = reader.server()
        if reader.problems:
            raise ConfigError(reader.problems)
        return server


# Seconds of each GRAPH_RATE_LIMIT period left unused. Graph counts calls as they arrive,
# in a window that slides; sends leave as late as a thread's sleep overshoots (tens of
# milliseconds on a busy machine), so calls spaced exactly period/amount apart still meet a
# full window now and then, and each such 429 stops the whole app for its Retry-After
# (a second). Spread over period + this, the calls keep that much slack per window:
# "100/second" sends about 95 a second.
RATE_LIMIT_SPARE = 0.05


def send_interval(rate_limit: str) -> float:
    """Seconds between two calls sent at `rate_limit`, Graph's limit for the app, with
    RATE_LIMIT_SPARE kept free in each period ("100/second": 0.0105)."""
    item = parse_rate_limit(rate_limit)
    return (float(item.get_expiry()) + RATE_LIMIT_SPARE) / item.amount


@dataclass(frozen=True)
class Settings:
    tenant_id: str
    client_id: str
    credential: Credential
    cloud: Cloud
    authority_host: str
    graph_base_url: str
    graph_api_version: str
    graph_ca_bundle: Path | None
    redis_url: str
    callers: Mapping[str, Caller]
    redis: RedisTarget
    external_id_namespace: uuid.UUID = DEFAULT_EXTERNAL_ID_NAMESPACE
    booking_ttl_seconds: int = 30 * 24 * 3600
    max_body_bytes: int = 64 * 1024
    # Time budgets, in seconds. Their ordering is checked below: a request's worst case
    # (wait for another request's lock, then make our own token and Graph calls) must end
    # before gunicorn kills the worker.
    graph_connect_timeout: float = 3.05
    graph_read_timeout: float = 10.0
    graph_budget: float = 20.0
    token_timeout: float = 5.0
    single_flight_wait: float = 25.0
    lock_ttl: float = 35.0
    redis_timeout: float = 0.5
    # Consecutive Graph failures (5xx, timeouts, unreachable) that open the circuit; 0 = off.
    graph_circuit_failures: int = 5
    graph_circuit_cooldown: float = 15.0
    # Graph allows 2,000 meetings per organizer per month; refuse (429) at this many.
    organizer_monthly_limit: int = 2000
    organizer_pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Before a cancel's DELETE, PATCH the lobby and presenters to the organizer alone.
    cancel_closes_lobby: bool = True
    server: ServerSettings = field(default_factory=ServerSettings)
    # Callers' Entra ID access tokens (CALLER_AUTH entra or both).
    caller_auth: str = "keys"
    caller_token_audiences: tuple[str, ...] = ()
    caller_tenants: tuple[str, ...] = ()
    caller_app_role: str = DEFAULT_CALLER_APP_ROLE
    # Every caller's rate limit unless its entry has `rateLimit`; None: no limit.
    default_caller_rate_limit: str | None = None
    # The rate Graph admits this app's calls at; all workers and replicas together send a
    # little under it (send_interval, service.graph.pacing). None: unpaced.
    graph_rate_limit: str | None = None

    @property
    def graph_send_interval(self) -> float | None:
        """Seconds between two Graph calls of the app at GRAPH_RATE_LIMIT; None: unpaced."""
        return None if self.graph_rate_limit is None else send_interval(self.graph_rate_limit)

    @property
    def accepts_keys(self) -> bool:
        return self.caller_auth in ("keys", "both")

    @property
    def accepts_tokens(self) -> bool:
        return self.caller_auth in ("entra", "both")

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def graph_scope(self) -> str:
        # The token's audience is the cloud's Graph, even when GRAPH_BASE_URL points at a
        # proxy or the emulator: tokens are minted for a cloud, not for a host name.
        return f"{self.cloud.graph_root}/.default"

    @property
    def beta(self) -> bool:
        return self.graph_api_version == "beta"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return _Reader(os.environ if env is None else env).settings()


def variable_names() -> frozenset[str]:
    """Every environment variable the service reads (the README's configuration table
    lists the same names; a test compares them)."""
    reader = _Reader({})
    try:
        reader.settings()
    except ConfigError:
        pass  # an empty environment is invalid; only the names looked at matter here
    return frozenset(reader.names)


class _Reader:
    """Reads and converts each variable, remembering every problem instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.names: set[str] = set()  # every variable looked at (see variable_names)

    def raw(self, name: str) -> str | None:
        self.names.add(name)
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str, hint: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required: {hint}")
            return ""
        return value

    def convert(self, name: str, default: T, coerce: Callable[[str], T], expected: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return coerce(value)
        except ValueError:
            self.problems.append(f"{name}={value!r} is not {expected}")
            return default

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("true", "1", "yes", "on"):
            return True
        if value.lower() in ("false", "0", "no", "off"):
            return False
        self.problems.append(f"{name}={value!r} is not true or false")
        return default

    def positive(self, name: str, default: float) -> float:
        value = self.convert(name, default, float, "a number of seconds")
        if value <= 0:
            self.problems.append(f"{name} must be greater than 0")
            return default
        return value

    def count(self, name: str, default: int) -> int:
        value = self.convert(name, default, int, "a whole number")
        if value < 0:
            self.problems.append(f"{name} must be 0 or more")
            return default
        return value

    def whole(self, name: str, default: int) -> int:
        value = self.convert(name, default, int, "a whole number")
        if value < 1:
            self.problems.append(f"{name} must be 1 or more")
            return default
        return value

    def server(self) -> ServerSettings:
        defaults = ServerSettings()
        level = (self.raw("LOG_LEVEL") or defaults.log_level).upper()
        if level not in LOG_LEVELS:
            self.problems.append(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
            level = defaults.log_level
        pre_stop_delay = self.convert(
            "PRE_STOP_DELAY_SECONDS", defaults.pre_stop_delay, float, "a number of seconds"
        )
        if pre_stop_delay < 0:
            self.problems.append("PRE_STOP_DELAY_SECONDS must be 0 or more")
            pre_stop_delay = defaults.pre_stop_delay
        metrics_dir = self.raw("PROMETHEUS_MULTIPROC_DIR")
        return ServerSettings(
            bind=self.raw("GUNICORN_BIND") or defaults.bind,
            workers=self.whole("GUNICORN_WORKERS", defaults.workers),
            threads=self.whole("GUNICORN_THREADS", defaults.threads),
            worker_timeout=self.positive("GUNICORN_TIMEOUT", defaults.worker_timeout),
            graceful_timeout=self.positive("GUNICORN_GRACEFUL_TIMEOUT", defaults.graceful_timeout),
            pre_stop_delay=pre_stop_delay,
            log_level=level,
            metrics_dir=Path(metrics_dir) if metrics_dir else None,
        )

    def guid(self, name: str, hint: str) -> str:
        value = self.required(name, hint)
        if value:
            try:
                uuid.UUID(value)
            except ValueError:
                self.problems.append(f"{name}={value!r} is not a GUID")
        return value.lower()

    def url(self, name: str, default: str) -> str:
        value = (self.raw(name) or default).rstrip("/")
        if not value.startswith("https://"):
            # MSAL refuses non-https authorities, and Graph is only served over TLS.
            self.problems.append(f"{name}={value!r} must be an https:// URL")
        return value

    def existing_file(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_file():
            self.problems.append(f"{name}={value!r} is not a readable file")
        return path

    def credential(self) -> Credential:
        secret = self.raw("AZURE_CLIENT_SECRET")
        certificate = self.existing_file("AZURE_CLIENT_CERTIFICATE_PATH")
        federated = self.existing_file("AZURE_FEDERATED_TOKEN_FILE")
        given = [v for v in (secret, certificate, federated) if v is not None]
        if len(given) != 1:
            self.problems.append(
                "set exactly one of AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH "
                f"(PEM with private key and certificate) or AZURE_FEDERATED_TOKEN_FILE "
                f"({len(given)} are set)"
            )
        if secret is not None:
            return Credential(client_secret=secret)
        if certificate is not None:
            return Credential(certificate_path=certificate)
        return Credential(federated_token_file=federated)

    def redis(self) -> RedisTarget:
        url = self.required(
            "REDIS_URL",
            "e.g. redis://127.0.0.1:6379/0, rediss+cluster://host:6380 or "
            "redis+sentinel://host:26379/mymaster",
        )
        ca_bundle = self.existing_file("REDIS_CA_BUNDLE")
        client_cert = self.existing_file("REDIS_CLIENT_CERT")
        client_key = self.existing_file("REDIS_CLIENT_KEY")
        if (client_cert is None) != (client_key is None):
            self.problems.append("set both REDIS_CLIENT_CERT and REDIS_CLIENT_KEY, or neither")
        try:
            target = parse_redis_url(url) if url else RedisTarget("single", False, url)
        except RedisUrlError as error:
            # Never the URL itself: it may hold the password.
            self.problems.append(f"REDIS_URL {error}")
            return RedisTarget("single", False, url)
        if not target.tls and (ca_bundle or client_cert or client_key):
            self.problems.append(
                "REDIS_CA_BUNDLE, REDIS_CLIENT_CERT and REDIS_CLIENT_KEY need a TLS REDIS_URL "
                "(rediss://, rediss+cluster:// or rediss+sentinel://)"
            )
        return replace(target, ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key)

    def pools(self) -> dict[str, tuple[str, ...]]:
        """ORGANIZER_POOLS_FILE: {"pools": {"<name>": ["<organizer object id>", ...]}}."""
        path = self.existing_file("ORGANIZER_POOLS_FILE")
        if path is None or not path.is_file():
            return {}
        name = "ORGANIZER_POOLS_FILE"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            self.problems.append(f"{name}: not readable JSON ({error})")
            return {}
        found = document.get("pools") if isinstance(document, dict) else None
        if not isinstance(found, dict) or not found:
            self.problems.append(f'{name}: expected {{"pools": {{"<name>": ["<guid>", ...]}}}}')
            return {}
        pools: dict[str, tuple[str, ...]] = {}
        for pool, members in found.items():
            if not isinstance(members, list) or not members:
                self.problems.append(f"{name}: pool {pool!r} needs a non-empty list of GUIDs")
                continue
            try:
                pools[pool] = tuple(str(uuid.UUID(str(member))) for member in members)
            except ValueError:
                self.problems.append(f"{name}: pool {pool!r} has a member that is not a GUID")
        return pools

    def settings(self) -> Settings:
        cloud_name = (self.raw("GRAPH_CLOUD") or "global").lower()
        cloud = CLOUDS.get(cloud_name)
        if cloud is None:
            self.problems.append(f"GRAPH_CLOUD={cloud_name!r} is not one of {', '.join(CLOUDS)}")
            cloud = CLOUDS["global"]
        api_version = self.raw("GRAPH_API_VERSION") or "v1.0"
        if api_version not in API_VERSIONS:
            self.problems.append(f"GRAPH_API_VERSION={api_version!r} is not v1.0 or beta")
        elif api_version == "beta" and not cloud.beta:
            self.problems.append(
                f"GRAPH_API_VERSION=beta is not available in the {cloud.name} cloud "
                "(createOrGet beta is global-only)"
            )

        callers: Mapping[str, Caller] = {}
        clients_file = self.existing_file("CLIENTS_FILE")
        if self.raw("CLIENTS_FILE") is None:
            self.problems.append("CLIENTS_FILE is required: the JSON file that defines callers")
        elif clients_file is not None and clients_file.is_file():
            try:
                callers = load_callers(clients_file)
            except CallerRegistryError as error:
                self.problems.extend(f"CLIENTS_FILE: {problem}" for problem in error.problems)

        redis = self.redis()
        settings = Settings(
            tenant_id=self.guid("AZURE_TENANT_ID", "the Entra tenant (directory) ID"),
            client_id=self.guid("AZURE_CLIENT_ID", "the app registration's client ID"),
            credential=self.credential(),
            cloud=cloud,
            authority_host=self.url("AZURE_AUTHORITY_HOST", cloud.authority_host),
            graph_base_url=self.url("GRAPH_BASE_URL", cloud.graph_root),
            graph_api_version=api_version,
            graph_ca_bundle=self.existing_file("GRAPH_CA_BUNDLE"),
            redis_url=redis.url,
            callers=callers,
            redis=redis,
            external_id_namespace=self.convert(
                "EXTERNAL_ID_NAMESPACE", DEFAULT_EXTERNAL_ID_NAMESPACE, uuid.UUID, "a UUID"
            ),
            booking_ttl_seconds=int(self.positive("BOOKING_TTL_SECONDS", 30 * 24 * 3600)),
            max_body_bytes=int(self.positive("MAX_BODY_BYTES", 64 * 1024)),
            graph_connect_timeout=self.positive("GRAPH_CONNECT_TIMEOUT", 3.05),
            graph_read_timeout=self.positive("GRAPH_READ_TIMEOUT", 10.0),
            graph_budget=self.positive("GRAPH_BUDGET_SECONDS", 20.0),
            token_timeout=self.positive("TOKEN_TIMEOUT_SECONDS", 5.0),
            single_flight_wait=self.positive("SINGLE_FLIGHT_WAIT_SECONDS", 25.0),
            lock_ttl=self.positive("LOCK_TTL_SECONDS", 35.0),
            redis_timeout=self.positive("REDIS_TIMEOUT_SECONDS", 0.5),
            graph_circuit_failures=self.count("GRAPH_CIRCUIT_FAILURES", 5),
            graph_circuit_cooldown=self.positive("GRAPH_CIRCUIT_COOLDOWN_SECONDS", 15.0),
            organizer_monthly_limit=self.count("ORGANIZER_MONTHLY_LIMIT", 2000),
            organizer_pools=self.pools(),
            cancel_closes_lobby=self.flag("CANCEL_CLOSES_LOBBY", True),
            graph_rate_limit=self.graph_rate_limit(),
            server=self.server(),
        )
        mode, audiences, tenants, role, rate_limit = self.caller_auth(settings.tenant_id)
        settings = replace(
            settings,
            caller_auth=mode,
            caller_token_audiences=audiences,
            caller_tenants=tenants,
            caller_app_role=role,
            default_caller_rate_limit=rate_limit,
        )
        if settings.caller_auth == "entra" and not any(c.app_id for c in callers.values()):
            self.problems.append("CALLER_AUTH=entra, but no CLIENTS_FILE entry has an appId")
        self.check_ordering(settings)
        if self.problems:
            raise ConfigError(self.problems)
        return settings

    def caller_auth(
        self, tenant_id: str
    ) -> tuple[str, tuple[str, ...], tuple[str, ...], str, str | None]:
        mode = (self.raw("CALLER_AUTH") or "keys").lower()
        if mode not in CALLER_AUTH_MODES:
            self.problems.append(f"CALLER_AUTH={mode!r} is not one of keys, entra, both")
            mode = "keys"
        audiences = tuple(a.strip() for a in (self.raw("CALLER_TOKEN_AUDIENCE") or "").split(","))
        audiences = tuple(a for a in audiences if a)
        if mode != "keys" and not audiences:
            self.problems.append(
                f"CALLER_TOKEN_AUDIENCE is required with CALLER_AUTH={mode}: the service's "
                "app ID URI (api://...) or client id, as the callers' tokens carry it in aud"
            )
        tenants = []
        for tenant in (self.raw("CALLER_TENANTS") or tenant_id).split(","):
            tenant = tenant.strip().lower()
            if not tenant:
                continue
            try:
                uuid.UUID(tenant)
            except ValueError:
                self.problems.append(f"CALLER_TENANTS: {tenant!r} is not a tenant id (a GUID)")
                continue
            tenants.append(tenant)
        role = self.raw("CALLER_APP_ROLE") or DEFAULT_CALLER_APP_ROLE
        rate_limit = self.rate_limit("DEFAULT_CALLER_RATE_LIMIT", "120/minute")
        return mode, audiences, tuple(tenants), role, rate_limit

    def graph_rate_limit(self) -> str | None:
        text = self.rate_limit("GRAPH_RATE_LIMIT", "95/second")
        if text is not None and parse_rate_limit(text).amount < 1:
            self.problems.append(f"GRAPH_RATE_LIMIT={text!r} must allow at least one call")
            return None
        return text

    def rate_limit(self, name: str, example: str) -> str | None:
        """A rate limit in the limits library's syntax (service.domain.callers.parse_rate_limit),
        kept as written; None when unset or invalid (then a problem is reported)."""
        text = self.raw(name)
        if text is None:
            return None
        try:
            parse_rate_limit(text)
        except ValueError:
            self.problems.append(
                f"{name}={text!r} is not one limit such as {example!r} "
                "(the limits library's syntax)"
            )
            return None
        return text

    def check_ordering(self, s: Settings) -> None:
        one_call = s.token_timeout + s.graph_budget
        if s.lock_ttl <= one_call:
            self.problems.append(
                f"LOCK_TTL_SECONDS ({s.lock_ttl:g}) must exceed TOKEN_TIMEOUT_SECONDS + "
                f"GRAPH_BUDGET_SECONDS ({one_call:g}), or a slow call would lose its lock"
            )
        worst = s.single_flight_wait + one_call
        if s.server.worker_timeout <= worst:
            self.problems.append(
                f"GUNICORN_TIMEOUT ({s.server.worker_timeout:g}) must exceed "
                "SINGLE_FLIGHT_WAIT_SECONDS"
                f" + TOKEN_TIMEOUT_SECONDS + GRAPH_BUDGET_SECONDS ({worst:g}), or gunicorn "
                "could kill a worker that is still within its budgets"
            )
        if s.server.graceful_timeout <= one_call:
            self.problems.append(
                f"GUNICORN_GRACEFUL_TIMEOUT ({s.server.graceful_timeout:g}) must exceed "
                f"TOKEN_TIMEOUT_SECONDS + GRAPH_BUDGET_SECONDS ({one_call:g}), or a shutdown "
                "could cut off a Graph call that is still within its budget"
            )
