"""Settings, read from the environment once and checked all at once.

Each environment variable is declared once below (`Variable`): its name, its default as an
operator would write it, the parser that turns its text into a value (or into problems)
and what it means. `Settings.from_env` and `ServerSettings.from_env` read those
declarations; the README's configuration table is checked against them by a test.

Every problem is collected before failing, so an operator fixing a deployment sees the
whole list in one start-up error instead of one problem per restart.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import unquote

from service.domain.callers import Caller, CallerRegistryError, load_callers, parse_rate_limit
from service.foundation.clouds import CLOUDS, Cloud

T = TypeVar("T")
N = TypeVar("N", int, float)

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
# OTEL_TRACES_EXPORTER's values the service honours: its one exporter, or none.
TRACES_EXPORTERS = ("otlp", "none")
# How the service logs in to Redis: REDIS_URL's user and password, or an Entra ID token
# (Azure Managed Redis with access keys disabled).
REDIS_AUTH_MODES = ("password", "entra")
# The audience of the Entra ID tokens Azure Cache / Managed Redis accepts.
REDIS_ENTRA_SCOPE = "https://redis.azure.com/.default"


class ConfigError(Exception):
    """The environment does not describe a runnable service; `problems` lists why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


class Invalid(ValueError):
    """A variable's text that gives no usable value; `problems` are the sentences reported,
    each naming the variable."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(problems))


# How a variable's text becomes its value: parse(name, text), raising Invalid. The text is
# never blank unless the variable has no default; then "" means unset.
Parse = Callable[[str, str], T]


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable, declared once.

    `default` is written as an operator would write the value and goes through `parse`
    like any other text, so it obeys the same rules. A blank value counts as unset. A
    default of "" means none: `parse` then gives the variable's empty value (None, (), {}),
    unless the reader passes a default that depends on other variables (the cloud's hosts,
    the app's tenant).
    """

    name: str
    default: str
    parse: Parse[T]
    doc: str
    # Unset, a required variable is reported as "NAME is required: `doc`".
    required: bool = False
    # The README's default column, when it is not `default` itself ("per cloud").
    default_doc: str = ""


# --- parsers ---------------------------------------------------------------------------


def _text(name: str, text: str) -> str:
    return text


def _path(name: str, text: str) -> Path:
    return Path(text)


def _optional(parse: Parse[T]) -> Parse[T | None]:
    """`parse`, with None for a blank (unset) value."""

    def optional(name: str, text: str) -> T | None:
        return parse(name, text) if text else None

    return optional


def _converted(coerce: Callable[[str], T], expected: str) -> Parse[T]:
    def converted(name: str, text: str) -> T:
        try:
            return coerce(text)
        except ValueError:
            raise Invalid(f"{name}={text!r} is not {expected}") from None

    return converted


def _refusing(parse: Parse[N], refused: Callable[[N], bool], rule: str) -> Parse[N]:
    """`parse`, with the values for which `refused` is true reported as "NAME `rule`"."""

    def checked(name: str, text: str) -> N:
        value = parse(name, text)
        if refused(value):
            raise Invalid(f"{name} {rule}")
        return value

    return checked


def _truncated(parse: Parse[float]) -> Parse[int]:
    """`parse`'s number without its fraction: a count of bytes or seconds kept as an int."""

    def truncated(name: str, text: str) -> int:
        return int(parse(name, text))

    return truncated


def _choice(choices: Mapping[str, T], listed: str, normalise: Callable[[str], str]) -> Parse[T]:
    def choice(name: str, text: str) -> T:
        key = normalise(text)
        if key not in choices:
            raise Invalid(f"{name}={key!r} is not {listed}")
        return choices[key]

    return choice


def _one_of(
    names: tuple[str, ...], listed: str = "", normalise: Callable[[str], str] = str
) -> Parse[str]:
    listed = listed or f"one of {', '.join(names)}"
    return _choice({name: name for name in names}, listed, normalise)


def _flag(name: str, text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise Invalid(f"{name}={text!r} is not true or false")


def _finite(text: str) -> float:
    """A float that is a real number: "inf" and "nan" parse as floats but are no duration
    (nan compares false with everything, so no bound would catch it later)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


_seconds = _converted(_finite, "a number of seconds")
_positive_seconds = _refusing(_seconds, lambda value: value <= 0, "must be greater than 0")
_positive_bytes = _refusing(
    _converted(_finite, "a number of bytes"), lambda value: value <= 0, "must be greater than 0"
)
_whole_number = _converted(int, "a whole number")


def _guid(name: str, text: str) -> str:
    try:
        uuid.UUID(text)
    except ValueError:
        raise Invalid(f"{name}={text!r} is not a GUID") from None
    return text.lower()


def _https_url(name: str, text: str) -> str:
    value = text.rstrip("/")
    if not value.startswith("https://"):
        # MSAL refuses non-https authorities, and Graph is only served over TLS.
        raise Invalid(f"{name}={value!r} must be an https:// URL")
    return value


def _readable_file(name: str, text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise Invalid(f"{name}={text!r} is not a readable file")
    return path


def _callers_file(name: str, text: str) -> Mapping[str, Caller]:
    try:
        return load_callers(_readable_file(name, text))
    except CallerRegistryError as error:
        raise Invalid(*(f"{name}: {problem}" for problem in error.problems)) from None


def _pools_file(name: str, text: str) -> Mapping[str, tuple[str, ...]]:
    """{"pools": {"<name>": ["<organizer object id>", ...]}}; none without a file."""
    if not text:
        return {}
    path = _readable_file(name, text)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise Invalid(f"{name}: not readable JSON ({error})") from None
    found = document.get("pools") if isinstance(document, dict) else None
    if not isinstance(found, dict) or not found:
        raise Invalid(f'{name}: expected {{"pools": {{"<name>": ["<guid>", ...]}}}}')
    pools: dict[str, tuple[str, ...]] = {}
    problems = []
    for pool, members in found.items():
        if not isinstance(members, list) or not members:
            problems.append(f"{name}: pool {pool!r} needs a non-empty list of GUIDs")
            continue
        try:
            pools[pool] = tuple(str(uuid.UUID(str(member))) for member in members)
        except ValueError:
            problems.append(f"{name}: pool {pool!r} has a member that is not a GUID")
    if problems:
        raise Invalid(*problems)
    return pools


def _redis_target(name: str, text: str) -> RedisTarget:
    try:
        return parse_redis_url(text)
    except RedisUrlError as error:
        # Never the URL itself: it may hold the password.
        raise Invalid(f"{name} {error}") from None


def _comma_separated(name: str, text: str) -> tuple[str, ...]:
    return tuple(item for item in (item.strip() for item in text.split(",")) if item)


def _tenants(name: str, text: str) -> tuple[str, ...]:
    tenants, problems = [], []
    for tenant in text.split(","):
        tenant = tenant.strip().lower()
        if not tenant:
            continue
        try:
            uuid.UUID(tenant)
        except ValueError:
            problems.append(f"{name}: {tenant!r} is not a tenant id (a GUID)")
            continue
        tenants.append(tenant)
    if problems:
        raise Invalid(*problems)
    return tuple(tenants)


def _rate_limit(example: str) -> Parse[str]:
    """A rate limit in the limits library's syntax (service.domain.callers.parse_rate_limit),
    kept as written."""

    def rate_limit(name: str, text: str) -> str:
        try:
            parse_rate_limit(text)
        except ValueError:
            raise Invalid(
                f"{name}={text!r} is not one limit such as {example!r} "
                "(the limits library's syntax)"
            ) from None
        return text

    return rate_limit


def _graph_rate_limit(name: str, text: str) -> str:
    text = _rate_limit("95/second")(name, text)
    if parse_rate_limit(text).amount < 1:
        raise Invalid(f"{name}={text!r} must allow at least one call")
    return text


# --- the variables -----------------------------------------------------------------------
# Grouped by what they configure. The README's configuration table says more on each.

_count = _refusing(_whole_number, lambda value: value < 0, "must be 0 or more")
_at_least_one = _refusing(_whole_number, lambda value: value < 1, "must be 1 or more")
_file = _optional(_readable_file)

# The app's identity in Entra ID: exactly one of the three credentials.
AZURE_TENANT_ID = Variable(
    "AZURE_TENANT_ID", "", _optional(_guid), "the Entra tenant (directory) ID", required=True
)
AZURE_CLIENT_ID = Variable(
    "AZURE_CLIENT_ID", "", _optional(_guid), "the app registration's client ID", required=True
)
AZURE_CLIENT_SECRET = Variable(
    "AZURE_CLIENT_SECRET", "", _optional(_text), "the app's client secret"
)
AZURE_CLIENT_CERTIFICATE_PATH = Variable(
    "AZURE_CLIENT_CERTIFICATE_PATH", "", _file, "PEM file with the private key and certificate"
)
AZURE_FEDERATED_TOKEN_FILE = Variable(
    "AZURE_FEDERATED_TOKEN_FILE",
    "",
    _file,
    "federated token (Workload Identity), re-read on each use",
)

# The cloud, Entra ID and Graph.
GRAPH_CLOUD = Variable(
    "GRAPH_CLOUD",
    "global",
    _choice(CLOUDS, f"one of {', '.join(CLOUDS)}", str.lower),
    "the national cloud: default authority host, Graph root and token scope",
)
AZURE_AUTHORITY_HOST = Variable(
    "AZURE_AUTHORITY_HOST", "", _optional(_https_url), "Entra ID's host", default_doc="per cloud"
)
GRAPH_BASE_URL = Variable(
    "GRAPH_BASE_URL", "", _optional(_https_url), "Graph's root, no version", default_doc="per cloud"
)
GRAPH_API_VERSION = Variable(
    "GRAPH_API_VERSION",
    "v1.0",
    _one_of(API_VERSIONS, listed="v1.0 or beta"),
    "beta: global cloud only",
)
GRAPH_CA_BUNDLE = Variable(
    "GRAPH_CA_BUNDLE", "", _file, "PEM bundle trusted for Entra ID and Graph"
)

# Redis.
REDIS_URL = Variable(
    "REDIS_URL",
    "",
    _optional(_redis_target),
    "e.g. redis://127.0.0.1:6379/0, rediss+cluster://host:6380 or "
    "redis+sentinel://host:26379/mymaster",
    required=True,
)
REDIS_CA_BUNDLE = Variable("REDIS_CA_BUNDLE", "", _file, "PEM bundle trusted for Redis")
REDIS_CLIENT_CERT = Variable("REDIS_CLIENT_CERT", "", _file, "PEM client certificate, mutual TLS")
REDIS_CLIENT_KEY = Variable("REDIS_CLIENT_KEY", "", _file, "REDIS_CLIENT_CERT's private key")
REDIS_AUTH = Variable(
    "REDIS_AUTH",
    "password",
    _one_of(REDIS_AUTH_MODES, normalise=str.lower),
    "password (REDIS_URL's) or entra: an Entra ID token of the AZURE_* credential; TLS only",
)
REDIS_ENTRA_OBJECT_ID = Variable(
    "REDIS_ENTRA_OBJECT_ID",
    "",
    _optional(_guid),
    "with REDIS_AUTH=entra: the Redis user name, the identity's object id",
    default_doc="— (the token's `oid`)",
)

# Callers and bookings.
CLIENTS_FILE = Variable(
    "CLIENTS_FILE",
    "",
    _optional(_callers_file),
    "the JSON file that defines callers",
    required=True,
)
EXTERNAL_ID_NAMESPACE = Variable(
    "EXTERNAL_ID_NAMESPACE",
    # See the README, "Idempotency". Changing it changes every externalId, which would
    # create new meetings for old bookings.
    "6f1c1d0e-3a51-4f0c-9d7e-4b1f6f0d2a11",
    _converted(uuid.UUID, "a UUID"),
    "UUID namespace of the externalId formula",
    default_doc="see above",
)
BOOKING_TTL_SECONDS = Variable(
    "BOOKING_TTL_SECONDS", "2592000", _truncated(_positive_seconds), "how long a booking is kept"
)
MAX_BODY_BYTES = Variable(
    "MAX_BODY_BYTES", "65536", _truncated(_positive_bytes), "larger bodies get 413"
)

# Time budgets, in seconds. Their ordering is checked (_Reader.check_ordering): a request's
# worst case (wait for another request's lock, then make our own token and Graph calls)
# must end before gunicorn kills the worker.
GRAPH_CONNECT_TIMEOUT = Variable(
    "GRAPH_CONNECT_TIMEOUT", "3.05", _positive_seconds, "connect timeout of a Graph attempt"
)
GRAPH_READ_TIMEOUT = Variable(
    "GRAPH_READ_TIMEOUT", "10", _positive_seconds, "read timeout of a Graph attempt"
)
GRAPH_BUDGET_SECONDS = Variable(
    "GRAPH_BUDGET_SECONDS", "20", _positive_seconds, "time for one Graph call with its retries"
)
TOKEN_TIMEOUT_SECONDS = Variable(
    "TOKEN_TIMEOUT_SECONDS", "5", _positive_seconds, "read timeout of a token request"
)
SINGLE_FLIGHT_WAIT_SECONDS = Variable(
    "SINGLE_FLIGHT_WAIT_SECONDS", "25", _positive_seconds, "a concurrent repeat waits this long"
)
LOCK_TTL_SECONDS = Variable("LOCK_TTL_SECONDS", "35", _positive_seconds, "life of a booking's lock")
REDIS_TIMEOUT_SECONDS = Variable(
    "REDIS_TIMEOUT_SECONDS", "0.5", _positive_seconds, "Redis connect and command timeout"
)
GUNICORN_TIMEOUT = Variable(
    "GUNICORN_TIMEOUT", "60", _positive_seconds, "gunicorn's worker timeout"
)
GUNICORN_GRACEFUL_TIMEOUT = Variable(
    "GUNICORN_GRACEFUL_TIMEOUT", "30", _positive_seconds, "drain time for requests on SIGTERM"
)

# Graph's circuit and pace, organizers, cancelling.
GRAPH_CIRCUIT_FAILURES = Variable(
    "GRAPH_CIRCUIT_FAILURES",
    "5",
    _count,
    "failed Graph calls in a row that open the circuit; 0: off",
)
GRAPH_CIRCUIT_COOLDOWN_SECONDS = Variable(
    "GRAPH_CIRCUIT_COOLDOWN_SECONDS",
    "15",
    _positive_seconds,
    "an open circuit's wait before a probe",
)
GRAPH_RATE_LIMIT = Variable(
    "GRAPH_RATE_LIMIT",
    "",
    _optional(_graph_rate_limit),
    "the rate Graph admits this app's calls at, e.g. 100/second",
    default_doc="— (unpaced)",
)
ORGANIZER_MONTHLY_LIMIT = Variable(
    "ORGANIZER_MONTHLY_LIMIT", "2000", _count, "meetings per organizer per UTC month; 0: off"
)
ORGANIZER_POOLS_FILE = Variable(
    "ORGANIZER_POOLS_FILE", "", _pools_file, "JSON file of the pools for organizerPool"
)
CANCEL_CLOSES_LOBBY = Variable(
    "CANCEL_CLOSES_LOBBY", "true", _flag, "before a cancel's DELETE, close lobby and presenters"
)

# How callers authenticate, and their rate limit.
CALLER_AUTH = Variable(
    "CALLER_AUTH", "keys", _one_of(CALLER_AUTH_MODES, normalise=str.lower), "keys, entra or both"
)
CALLER_TOKEN_AUDIENCE = Variable(
    "CALLER_TOKEN_AUDIENCE",
    "",
    _comma_separated,
    "the callers' tokens' aud: app ID URI and/or client id",
    default_doc="— (required with `entra`/`both`)",
)
CALLER_TENANTS = Variable(
    "CALLER_TENANTS",
    "",
    _tenants,
    "tenants whose tokens are accepted",
    default_doc="`AZURE_TENANT_ID`",
)
CALLER_APP_ROLE = Variable(
    "CALLER_APP_ROLE", "Meetings.Provision", _text, "the app role callers' tokens carry"
)
DEFAULT_CALLER_RATE_LIMIT = Variable(
    "DEFAULT_CALLER_RATE_LIMIT",
    "",
    _optional(_rate_limit("120/minute")),
    "each caller's rate limit unless its entry has rateLimit",
    default_doc="— (unlimited)",
)

# How the process is served (ServerSettings), besides the timeouts above.
GUNICORN_WORKERS = Variable("GUNICORN_WORKERS", "2", _at_least_one, "gunicorn processes")
GUNICORN_THREADS = Variable("GUNICORN_THREADS", "8", _at_least_one, "threads per process")
PRE_STOP_DELAY_SECONDS = Variable(
    "PRE_STOP_DELAY_SECONDS",
    "0",
    _refusing(_seconds, lambda value: value < 0, "must be 0 or more"),
    "after SIGTERM, serve this long with /readyz 503",
)
GUNICORN_BIND = Variable("GUNICORN_BIND", "0.0.0.0:8080", _text, "listen address")
PROMETHEUS_MULTIPROC_DIR = Variable(
    "PROMETHEUS_MULTIPROC_DIR", "", _optional(_path), "the workers' metrics files; wiped at start"
)
LOG_LEVEL = Variable(
    "LOG_LEVEL", "INFO", _one_of(LOG_LEVELS, normalise=str.upper), "level of the JSON log lines"
)

# Traces (README, "Tracing"): OpenTelemetry's own variables, read by its SDK itself
# (service.tracing); declared here for the README's table, with the SDK's defaults. Off
# unless an exporter or an endpoint is set.
OTEL_TRACES_EXPORTER = Variable(
    "OTEL_TRACES_EXPORTER",
    "",
    _optional(_one_of(TRACES_EXPORTERS, normalise=str.lower)),
    "otlp (OTLP over HTTP) or none",
    default_doc="— (off; `otlp` when an endpoint is set)",
)
OTEL_EXPORTER_OTLP_ENDPOINT = Variable(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "",
    _text,
    "the OTLP/HTTP receiver's base URL; traces go to {it}/v1/traces",
    default_doc="— (off)",
)
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = Variable(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "",
    _text,
    "the OTLP/HTTP traces URL itself",
    default_doc="— (off)",
)
OTEL_EXPORTER_OTLP_HEADERS = Variable(
    "OTEL_EXPORTER_OTLP_HEADERS", "", _text, "headers of each export, key=value,..."
)
OTEL_SERVICE_NAME = Variable(
    "OTEL_SERVICE_NAME", "meeting-provisioning", _text, "the traces' service.name"
)
OTEL_RESOURCE_ATTRIBUTES = Variable(
    "OTEL_RESOURCE_ATTRIBUTES", "", _text, "more resource attributes, key=value,..."
)
OTEL_TRACES_SAMPLER = Variable(
    "OTEL_TRACES_SAMPLER", "parentbased_always_on", _text, "which requests are traced"
)
OTEL_TRACES_SAMPLER_ARG = Variable(
    "OTEL_TRACES_SAMPLER_ARG", "", _text, "the sampler's argument, e.g. a ratio"
)
OTEL_BSP_SCHEDULE_DELAY = Variable(
    "OTEL_BSP_SCHEDULE_DELAY", "5000", _text, "milliseconds between two exports"
)

# Every variable above, in the order declared (collected, so none can be left out).
VARIABLES: tuple[Variable[Any], ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, Variable)
)

# The namespace under which externalIds are derived when EXTERNAL_ID_NAMESPACE is unset.
DEFAULT_EXTERNAL_ID_NAMESPACE = uuid.UUID(EXTERNAL_ID_NAMESPACE.default)


def variable_names() -> frozenset[str]:
    """Every environment variable the service reads (the README's configuration table
    lists the same names; a test compares them)."""
    return frozenset(variable.name for variable in VARIABLES)


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
    # REDIS_AUTH: "password" (the URL's credentials) or "entra" (an Entra ID token, renewed).
    auth: str = "password"
    # REDIS_ENTRA_OBJECT_ID: the user name of an Entra login; None: the token's oid claim.
    entra_object_id: str | None = None


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

    bind: str
    workers: int
    threads: int
    worker_timeout: float
    graceful_timeout: float
    # Seconds between SIGTERM and closing the listening socket, while /readyz answers 503.
    pre_stop_delay: float
    log_level: str
    # Where prometheus-client's multiprocess mode keeps the workers' values.
    metrics_dir: Path | None

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
    """Everything the service reads from the environment; each field's variable, default
    and rules are declared above (`Variable`)."""

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
    external_id_namespace: uuid.UUID
    booking_ttl_seconds: int
    max_body_bytes: int
    # Time budgets, in seconds (their ordering is checked: _Reader.check_ordering).
    graph_connect_timeout: float
    graph_read_timeout: float
    graph_budget: float
    token_timeout: float
    single_flight_wait: float
    lock_ttl: float
    redis_timeout: float
    # Consecutive Graph failures (5xx, timeouts, unreachable) that open the circuit; 0 = off.
    graph_circuit_failures: int
    graph_circuit_cooldown: float
    # Graph allows 2,000 meetings per organizer per month; refuse (429) at this many.
    organizer_monthly_limit: int
    organizer_pools: Mapping[str, tuple[str, ...]]
    # Before a cancel's DELETE, PATCH the lobby and presenters to the organizer alone.
    cancel_closes_lobby: bool
    server: ServerSettings
    # Callers' Entra ID access tokens (CALLER_AUTH entra or both).
    caller_auth: str
    caller_token_audiences: tuple[str, ...]
    caller_tenants: tuple[str, ...]
    caller_app_role: str
    # Every caller's rate limit unless its entry has `rateLimit`; None: no limit.
    default_caller_rate_limit: str | None
    # The rate Graph admits this app's calls at; all workers and replicas together send a
    # little under it (send_interval, service.graph.pacing). None: unpaced.
    graph_rate_limit: str | None
    # Traces are exported (service.tracing): OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
    # set without it. The SDK reads the other OTEL_* variables itself.
    tracing: bool = False

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


class _Reader:
    """Reads the declared variables, remembering every problem instead of stopping, and
    checks the rules between variables. The order of the reads is the order of the
    problems in the error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, variable: Variable[Any]) -> str:
        """The variable's text as set; "" when unset or blank."""
        return self.env.get(variable.name, "").strip()

    def read(self, variable: Variable[T], default: str = "") -> T:
        """The variable's value: from its text, else from `default` (one that depends on
        other variables), else from its declared default. A problem is noted and the
        declared default's value used instead, so the later checks can go on."""
        text = self.text(variable)
        if not text and variable.required:
            self.problems.append(f"{variable.name} is required: {variable.doc}")
        try:
            return variable.parse(variable.name, text or default or variable.default)
        except Invalid as invalid:
            self.problems.extend(invalid.problems)
            return variable.parse(variable.name, variable.default)

    def server(self) -> ServerSettings:
        log_level = self.read(LOG_LEVEL)
        pre_stop_delay = self.read(PRE_STOP_DELAY_SECONDS)
        metrics_dir = self.read(PROMETHEUS_MULTIPROC_DIR)
        return ServerSettings(
            bind=self.read(GUNICORN_BIND),
            workers=self.read(GUNICORN_WORKERS),
            threads=self.read(GUNICORN_THREADS),
            worker_timeout=self.read(GUNICORN_TIMEOUT),
            graceful_timeout=self.read(GUNICORN_GRACEFUL_TIMEOUT),
            pre_stop_delay=pre_stop_delay,
            log_level=log_level,
            metrics_dir=metrics_dir,
        )

    def credential(self) -> Credential:
        secret = self.read(AZURE_CLIENT_SECRET)
        certificate = self.read(AZURE_CLIENT_CERTIFICATE_PATH)
        federated = self.read(AZURE_FEDERATED_TOKEN_FILE)
        # What counts is what is set: a file that is not readable is reported on its own.
        given = [
            variable
            for variable in (
                AZURE_CLIENT_SECRET,
                AZURE_CLIENT_CERTIFICATE_PATH,
                AZURE_FEDERATED_TOKEN_FILE,
            )
            if self.text(variable)
        ]
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
        target = self.read(REDIS_URL)
        tls_files = (REDIS_CA_BUNDLE, REDIS_CLIENT_CERT, REDIS_CLIENT_KEY)
        ca_bundle, client_cert, client_key = (self.read(variable) for variable in tls_files)
        if bool(self.text(REDIS_CLIENT_CERT)) != bool(self.text(REDIS_CLIENT_KEY)):
            self.problems.append("set both REDIS_CLIENT_CERT and REDIS_CLIENT_KEY, or neither")
        if target is None:  # reported: unset, or invalid (then the TLS check is moot)
            if self.text(REDIS_URL):
                return RedisTarget("single", False, "")
            target = RedisTarget("single", False, "")
        if not target.tls and any(self.text(variable) for variable in tls_files):
            self.problems.append(
                "REDIS_CA_BUNDLE, REDIS_CLIENT_CERT and REDIS_CLIENT_KEY need a TLS REDIS_URL "
                "(rediss://, rediss+cluster:// or rediss+sentinel://)"
            )
        auth = self.read(REDIS_AUTH)
        object_id = self.read(REDIS_ENTRA_OBJECT_ID)
        if auth == "entra":
            self.entra_checks(target)
        return replace(
            target,
            ca_bundle=ca_bundle,
            client_cert=client_cert,
            client_key=client_key,
            auth=auth,
            entra_object_id=object_id,
        )

    def entra_checks(self, target: RedisTarget) -> None:
        # Entra ID logins travel only over TLS (Azure refuses them otherwise), and a token
        # in the clear would be a bearer credential for anyone on the path.
        if not target.tls and self.text(REDIS_URL):
            self.problems.append(
                "REDIS_AUTH=entra requires TLS: REDIS_URL must be rediss://, rediss+cluster:// "
                "or rediss+sentinel:// (an Entra ID token is never sent in the clear)"
            )
        if target.password is not None:
            self.problems.append(
                "REDIS_AUTH=entra logs in with a token: REDIS_URL must hold no password"
            )

    def settings(self) -> Settings:
        cloud = self.read(GRAPH_CLOUD)
        api_version = self.read(GRAPH_API_VERSION)
        if api_version == "beta" and not cloud.beta:
            self.problems.append(
                f"GRAPH_API_VERSION=beta is not available in the {cloud.name} cloud "
                "(createOrGet beta is global-only)"
            )
        callers = self.read(CLIENTS_FILE) or {}
        redis = self.redis()
        settings = Settings(
            tenant_id=self.read(AZURE_TENANT_ID) or "",
            client_id=self.read(AZURE_CLIENT_ID) or "",
            credential=self.credential(),
            cloud=cloud,
            authority_host=self.read(AZURE_AUTHORITY_HOST, cloud.authority_host) or "",
            graph_base_url=self.read(GRAPH_BASE_URL, cloud.graph_root) or "",
            graph_api_version=api_version,
            graph_ca_bundle=self.read(GRAPH_CA_BUNDLE),
            redis_url=redis.url,
            callers=callers,
            redis=redis,
            external_id_namespace=self.read(EXTERNAL_ID_NAMESPACE),
            booking_ttl_seconds=self.read(BOOKING_TTL_SECONDS),
            max_body_bytes=self.read(MAX_BODY_BYTES),
            graph_connect_timeout=self.read(GRAPH_CONNECT_TIMEOUT),
            graph_read_timeout=self.read(GRAPH_READ_TIMEOUT),
            graph_budget=self.read(GRAPH_BUDGET_SECONDS),
            token_timeout=self.read(TOKEN_TIMEOUT_SECONDS),
            single_flight_wait=self.read(SINGLE_FLIGHT_WAIT_SECONDS),
            lock_ttl=self.read(LOCK_TTL_SECONDS),
            redis_timeout=self.read(REDIS_TIMEOUT_SECONDS),
            graph_circuit_failures=self.read(GRAPH_CIRCUIT_FAILURES),
            graph_circuit_cooldown=self.read(GRAPH_CIRCUIT_COOLDOWN_SECONDS),
            organizer_monthly_limit=self.read(ORGANIZER_MONTHLY_LIMIT),
            organizer_pools=self.read(ORGANIZER_POOLS_FILE),
            cancel_closes_lobby=self.read(CANCEL_CLOSES_LOBBY),
            graph_rate_limit=self.read(GRAPH_RATE_LIMIT),
            server=self.server(),
            caller_auth=(caller_auth := self.read(CALLER_AUTH)),
            caller_token_audiences=self.audiences(caller_auth),
            # Unset, the app's own tenant, checked by the same rules.
            caller_tenants=self.read(CALLER_TENANTS, self.text(AZURE_TENANT_ID)),
            caller_app_role=self.read(CALLER_APP_ROLE),
            default_caller_rate_limit=self.read(DEFAULT_CALLER_RATE_LIMIT),
            tracing=self.tracing(),
        )
        if settings.caller_auth == "entra" and not any(c.app_id for c in callers.values()):
            self.problems.append("CALLER_AUTH=entra, but no CLIENTS_FILE entry has an appId")
        self.check_ordering(settings)
        if self.problems:
            raise ConfigError(self.problems)
        return settings

    def tracing(self) -> bool:
        exporter = self.read(OTEL_TRACES_EXPORTER)
        if exporter is not None:
            return exporter != "none"
        return bool(
            self.text(OTEL_EXPORTER_OTLP_ENDPOINT) or self.text(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        )

    def audiences(self, caller_auth: str) -> tuple[str, ...]:
        audiences = self.read(CALLER_TOKEN_AUDIENCE)
        if caller_auth != "keys" and not audiences:
            self.problems.append(
                f"CALLER_TOKEN_AUDIENCE is required with CALLER_AUTH={caller_auth}: the "
                "service's app ID URI (api://...) or client id, as the callers' tokens carry "
                "it in aud"
            )
        return audiences

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
