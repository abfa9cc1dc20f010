import hashlib
import importlib
import json
import os
import re
from pathlib import Path

import pytest

from service import config
from service.config import ConfigError, Settings, variable_names

pytestmark = pytest.mark.unit

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"


@pytest.fixture
def env(tmp_path):
    clients = tmp_path / "clients.json"
    key = hashlib.sha256(b"k").hexdigest()
    clients.write_text(
        json.dumps({"clients": [{"id": "a", "keySha256": key, "organizers": ["*"]}]})
    )
    return {
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_CLIENT_SECRET": "s3cret-value",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CLIENTS_FILE": str(clients),
    }


def test_defaults_follow_the_global_cloud(env):
    settings = Settings.from_env(env)
    assert settings.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.graph_base_url == "https://graph.microsoft.com"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.graph_api_version == "v1.0"
    assert settings.credential.kind == "secret"
    assert settings.booking_ttl_seconds == 30 * 24 * 3600
    assert settings.max_body_bytes == 64 * 1024


@pytest.mark.parametrize(
    ("cloud", "authority_host", "graph_root"),
    [
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_national_clouds_set_authority_graph_root_and_scope(env, cloud, authority_host, graph_root):
    settings = Settings.from_env({**env, "GRAPH_CLOUD": cloud})
    assert settings.authority_host == authority_host
    assert settings.graph_base_url == graph_root
    assert settings.graph_scope == f"{graph_root}/.default"


def test_explicit_urls_override_the_cloud(env):
    settings = Settings.from_env(
        {
            **env,
            "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9443/",
            "GRAPH_BASE_URL": "https://127.0.0.1:9443",
        }
    )
    assert settings.authority == f"https://127.0.0.1:9443/{TENANT}"
    assert settings.graph_base_url == "https://127.0.0.1:9443"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"  # still the cloud's


def test_every_problem_is_listed_in_one_error():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {"GRAPH_CLOUD": "mars", "GRAPH_API_VERSION": "v2", "GRAPH_BASE_URL": "http://x"}
        )
    message = str(raised.value)
    for expected in (
        "AZURE_TENANT_ID is required",
        "AZURE_CLIENT_ID is required",
        "set exactly one of AZURE_CLIENT_SECRET",
        "REDIS_URL is required",
        "CLIENTS_FILE is required",
        "GRAPH_CLOUD='mars'",
        "GRAPH_API_VERSION='v2'",
        "GRAPH_BASE_URL='http://x' must be an https:// URL",
    ):
        assert expected in message


def test_two_credentials_are_refused(env, tmp_path):
    token = tmp_path / "token"
    token.write_text("x")
    with pytest.raises(ConfigError, match="exactly one"):
        Settings.from_env({**env, "AZURE_FEDERATED_TOKEN_FILE": str(token)})


def test_beta_is_refused_outside_the_global_cloud(env):
    with pytest.raises(ConfigError, match="beta is not available in the usgov cloud"):
        Settings.from_env({**env, "GRAPH_CLOUD": "usgov", "GRAPH_API_VERSION": "beta"})


def test_budgets_must_fit_inside_the_worker_timeout_and_lock(env):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**env, "GRAPH_BUDGET_SECONDS": "50", "GUNICORN_TIMEOUT": "30"})
    assert "LOCK_TTL_SECONDS" in str(raised.value)
    assert "GUNICORN_TIMEOUT (30) must exceed" in str(raised.value)


def test_default_budgets_are_ordered(env):
    s = Settings.from_env(env)
    assert s.lock_ttl > s.token_timeout + s.graph_budget
    assert s.server.worker_timeout > s.single_flight_wait + s.token_timeout + s.graph_budget
    assert s.server.graceful_timeout > s.token_timeout + s.graph_budget


def test_gunicorn_defaults_outlast_the_service_budgets(env, monkeypatch):
    """What gunicorn really uses (its config module, not our Settings' copy of the numbers)
    must leave room for a whole Graph call: worker timeout > token + Graph budgets (and the
    single-flight wait before them); graceful timeout > token + Graph budgets."""
    for name in ("GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT", "PRE_STOP_DELAY_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    conf = importlib.reload(importlib.import_module("service.gunicorn_conf"))
    s = Settings.from_env(env)
    assert conf.timeout > s.single_flight_wait + s.token_timeout + s.graph_budget
    assert conf.graceful_timeout > s.token_timeout + s.graph_budget
    assert (conf.timeout, conf.graceful_timeout) == (
        s.server.worker_timeout,
        s.server.graceful_timeout,
    )
    assert conf.pre_stop_delay == 0


def test_a_graceful_timeout_shorter_than_a_graph_call_is_refused(env):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**env, "GUNICORN_GRACEFUL_TIMEOUT": "10"})
    assert "GUNICORN_GRACEFUL_TIMEOUT (10) must exceed" in str(raised.value)


@pytest.mark.parametrize("value", ["-1", "two"])
def test_circuit_threshold_must_be_a_count(env, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**env, "GRAPH_CIRCUIT_FAILURES": value})
    assert "GRAPH_CIRCUIT_FAILURES" in str(raised.value)


@pytest.mark.parametrize(
    "name", ["BOOKING_TTL_SECONDS", "GRAPH_BUDGET_SECONDS", "LOCK_TTL_SECONDS"]
)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_a_duration_must_be_a_finite_number(env, name, value):
    with pytest.raises(ConfigError, match=f"{name}='{value}' is not a number of seconds"):
        Settings.from_env({**env, name: value})


def test_a_body_limit_is_a_number_of_bytes(env):
    with pytest.raises(ConfigError, match="MAX_BODY_BYTES='inf' is not a number of bytes"):
        Settings.from_env({**env, "MAX_BODY_BYTES": "inf"})


def test_the_secret_never_appears_in_the_settings_repr(env):
    assert "s3cret-value" not in repr(Settings.from_env(env))


def test_gunicorn_reads_its_settings_by_the_same_rules(env, monkeypatch):
    """gunicorn_conf.py takes ServerSettings, so a value the workers' Settings refuse is
    refused by gunicorn's master too, with the same message."""
    monkeypatch.setenv("GUNICORN_WORKERS", "0")
    with pytest.raises(ConfigError, match="GUNICORN_WORKERS must be 1 or more"):
        importlib.reload(importlib.import_module("service.gunicorn_conf"))
    with pytest.raises(ConfigError, match="GUNICORN_WORKERS must be 1 or more"):
        Settings.from_env({**env, "GUNICORN_WORKERS": "0"})
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "90.5")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/mps-metrics")
    conf = importlib.reload(importlib.import_module("service.gunicorn_conf"))
    assert (conf.workers, conf.timeout, conf.loglevel) == (3, 90, "warning")
    assert str(conf.metrics_dir) == "/tmp/mps-metrics"
    server = Settings.from_env({**env, **dict(os.environ)}).server
    assert (server.workers, server.worker_timeout, server.log_level) == (3, 90.5, "WARNING")


def test_an_unknown_log_level_is_refused(env):
    with pytest.raises(ConfigError, match="LOG_LEVEL='LOUD' is not one of"):
        Settings.from_env({**env, "LOG_LEVEL": "loud"})


def readme_configuration_rows() -> list[tuple[list[str], str]]:
    """(the variables a row names, its default column) of the README's configuration table."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return [
        (re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]), cells[2].strip())
        for cells in (line.split("|") for line in section.splitlines() if line.startswith("| `"))
    ]


def test_the_readme_lists_exactly_the_variables_the_service_reads():
    documented = {name for names, _ in readme_configuration_rows() for name in names}
    assert documented == variable_names()


def shown_default(variable: config.Variable[object]) -> str:
    """The README's default column for one declared variable."""
    if variable.default_doc:
        return variable.default_doc
    if variable.required:
        return "required"
    return f"`{variable.default}`" if variable.default else "—"


def test_the_readme_shows_the_declared_defaults():
    """A row naming several variables shows their defaults joined by " / ", or one when
    they are the same ("`2` / `8`", "—")."""
    declared = {variable.name: shown_default(variable) for variable in config.VARIABLES}
    for names, shown in readme_configuration_rows():
        assert shown == " / ".join(dict.fromkeys(declared[name] for name in names)), names


def test_each_declaration_is_named_after_its_variable():
    declared = {
        name: value for name, value in vars(config).items() if isinstance(value, config.Variable)
    }
    assert {name: variable.name for name, variable in declared.items()} == {
        name: name for name in declared
    }
    assert tuple(declared.values()) == config.VARIABLES


# --- callers' Entra tokens and rate limits -------------------------------------------------

OTHER_TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
APP = "12345678-1234-1234-1234-123456789abc"


@pytest.fixture
def entra_env(env, tmp_path):
    """`env` whose CLIENTS_FILE entry also names an Entra app."""
    clients = tmp_path / "clients-entra.json"
    key = hashlib.sha256(b"k").hexdigest()
    entry = {"id": "a", "keySha256": key, "appId": APP, "organizers": ["*"]}
    clients.write_text(json.dumps({"clients": [entry]}))
    return {**env, "CLIENTS_FILE": str(clients)}


def test_callers_authenticate_by_key_unless_told_otherwise(env):
    settings = Settings.from_env(env)
    assert settings.caller_auth == "keys"
    assert settings.caller_tenants == (TENANT,)
    assert settings.caller_app_role == "Meetings.Provision"
    assert settings.default_caller_rate_limit is None


@pytest.mark.parametrize("mode", ["keys", "entra", "both", "BOTH"])
def test_caller_auth_modes(entra_env, mode):
    settings = Settings.from_env(
        {**entra_env, "CALLER_AUTH": mode, "CALLER_TOKEN_AUDIENCE": "api://mp, 0000-app "}
    )
    assert settings.caller_auth == mode.lower()
    assert settings.caller_token_audiences == ("api://mp", "0000-app")


def test_an_unknown_caller_auth_is_refused(env):
    with pytest.raises(ConfigError, match="CALLER_AUTH='oauth' is not one of keys, entra, both"):
        Settings.from_env({**env, "CALLER_AUTH": "oauth"})


@pytest.mark.parametrize("mode", ["entra", "both"])
def test_tokens_need_an_audience(entra_env, mode):
    with pytest.raises(
        ConfigError, match=f"CALLER_TOKEN_AUDIENCE is required with CALLER_AUTH={mode}"
    ):
        Settings.from_env({**entra_env, "CALLER_AUTH": mode, "CALLER_TOKEN_AUDIENCE": " , "})


def test_entra_only_needs_a_caller_with_an_app(env):
    with pytest.raises(ConfigError, match="no CLIENTS_FILE entry has an appId"):
        Settings.from_env({**env, "CALLER_AUTH": "entra", "CALLER_TOKEN_AUDIENCE": "api://mp"})


def test_caller_tenants_are_a_comma_separated_list_of_guids(env):
    settings = Settings.from_env({**env, "CALLER_TENANTS": f" {TENANT} ,{OTHER_TENANT.upper()},"})
    assert settings.caller_tenants == (TENANT, OTHER_TENANT)


def test_a_caller_tenant_that_is_not_a_guid_is_refused(env):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**env, "CALLER_TENANTS": f"{TENANT},contoso.onmicrosoft.com"})
    assert "CALLER_TENANTS: 'contoso.onmicrosoft.com' is not a tenant id (a GUID)" in str(
        raised.value
    )


def test_the_caller_app_role_can_be_renamed(env):
    settings = Settings.from_env({**env, "CALLER_APP_ROLE": "Bookings.Write"})
    assert settings.caller_app_role == "Bookings.Write"


@pytest.mark.parametrize("limit", ["120/minute", "10 per second", "1000/hour"])
def test_a_default_caller_rate_limit_in_the_limits_syntax(env, limit):
    assert (
        Settings.from_env({**env, "DEFAULT_CALLER_RATE_LIMIT": limit}).default_caller_rate_limit
        == limit
    )


@pytest.mark.parametrize(
    "limit", ["120", "fast", "120/fortnight", "-1/minute", "10/second;100/minute", "/minute"]
)
def test_a_default_caller_rate_limit_that_does_not_parse_is_refused(env, limit):
    with pytest.raises(ConfigError, match="DEFAULT_CALLER_RATE_LIMIT=.* is not one limit"):
        Settings.from_env({**env, "DEFAULT_CALLER_RATE_LIMIT": limit})


@pytest.mark.parametrize(
    ("cloud", "v1_issuer_host"),
    [
        ("global", "https://sts.windows.net"),
        ("usgov", "https://sts.windows.net"),
        ("dod", "https://sts.windows.net"),
        ("china", "https://sts.chinacloudapi.cn"),
    ],
)
def test_each_cloud_names_its_v1_token_issuer(env, cloud, v1_issuer_host):
    assert Settings.from_env({**env, "GRAPH_CLOUD": cloud}).cloud.v1_issuer_host == v1_issuer_host


# --- GRAPH_RATE_LIMIT ---------------------------------------------------------------------


def test_graph_calls_are_unpaced_by_default(env):
    settings = Settings.from_env(env)
    assert settings.graph_rate_limit is None
    assert settings.graph_send_interval is None


@pytest.mark.parametrize(
    ("limit", "interval"),
    [
        ("100/second", 1.05 / 100),
        ("95 per second", 1.05 / 95),
        ("6000/minute", 60.05 / 6000),
        ("10/2 seconds", 2.05 / 10),
    ],
)
def test_a_graph_rate_limit_in_the_limits_syntax(env, limit, interval):
    settings = Settings.from_env({**env, "GRAPH_RATE_LIMIT": limit})
    assert settings.graph_rate_limit == limit
    assert settings.graph_send_interval == pytest.approx(interval)


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        ("100", "is not one limit"),
        ("fast", "is not one limit"),
        ("10/second;100/minute", "is not one limit"),
        ("0/second", "must allow at least one call"),
    ],
)
def test_a_graph_rate_limit_that_does_not_parse_is_refused(env, limit, problem):
    with pytest.raises(ConfigError, match=f"GRAPH_RATE_LIMIT=.* {problem}"):
        Settings.from_env({**env, "GRAPH_RATE_LIMIT": limit})


def test_redis_auth_defaults_to_the_password_of_the_url(env):
    settings = Settings.from_env(env)
    assert settings.redis.auth == "password"
    assert settings.redis.entra_object_id is None


@pytest.mark.parametrize(
    "url",
    [
        "rediss://cache.example:10000/0",
        "rediss+cluster://cache.example:10000",
        "rediss+sentinel://sentinel.example:26379/primary",
    ],
)
def test_redis_auth_entra_over_tls_reads_the_object_id(env, url):
    oid = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"
    settings = Settings.from_env(
        {**env, "REDIS_URL": url, "REDIS_AUTH": "Entra", "REDIS_ENTRA_OBJECT_ID": oid}
    )
    assert settings.redis.auth == "entra"
    assert settings.redis.entra_object_id == oid.lower()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379/primary",
    ],
)
def test_redis_auth_entra_without_tls_stops_the_start(env, url):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**env, "REDIS_URL": url, "REDIS_AUTH": "entra"})
    (problem,) = error.value.problems
    assert problem.startswith("REDIS_AUTH=entra requires TLS")
    assert "rediss://" in problem


def test_redis_auth_entra_refuses_a_password_in_the_url(env):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(
            {**env, "REDIS_URL": "rediss://user:hunter2@cache:6380/0", "REDIS_AUTH": "entra"}
        )
    assert error.value.problems == [
        "REDIS_AUTH=entra logs in with a token: REDIS_URL must hold no password"
    ]
    assert "hunter2" not in str(error.value)


def test_redis_auth_and_object_id_are_checked(env):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**env, "REDIS_AUTH": "token", "REDIS_ENTRA_OBJECT_ID": "me"})
    assert error.value.problems == [
        "REDIS_AUTH='token' is not one of password, entra",
        "REDIS_ENTRA_OBJECT_ID='me' is not a GUID",
    ]
