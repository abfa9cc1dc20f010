"""The rendered overlays (kustomize) against what the service and the image need: probes,
security context, the shutdown arithmetic, settings the service accepts, Redis per
overlay, the network policy, workload identity. The scanners run in `make check-deploy`
and tests/deploy/test_deploy_scanners.py."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from local_stack.proxy import (
    PROXY_TEMPLATE,
    nginx_executable,
    proxy_placeholders,
    render_proxy_config,
)

from service.config import MAX_BODY_BYTES, Settings
from tests.deploy.tooling import (
    DEPLOY,
    OVERLAYS,
    PROXY,
    REPO,
    Manifest,
    container,
    container_env,
    find,
    find_by_name,
    proxy_container,
    render,
)

pytestmark = pytest.mark.deploy

# Seconds the gunicorn master needs after its graceful timeout to reap workers and exit.
SHUTDOWN_MARGIN = 5
APP = "meeting-provisioning"
TENANT = "2c1b3a4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
CLIENT = "6e5d4c3b-2a19-4807-b6a5-948372615049"


def dockerfile_uid() -> int:
    text = (REPO / "Dockerfile").read_text()
    uid = re.search(r"useradd[^\n]*--uid (\d+)", text)
    user = re.search(r"^USER (\d+)(?::(\d+))?$", text, re.M)
    assert uid and user, "the Dockerfile must create a user with a fixed UID and switch to it"
    assert user.group(1) == uid.group(1)
    return int(uid.group(1))


def pod_spec(docs: list[Manifest], kind: str = "Deployment", name: str = APP) -> Manifest:
    return find(docs, kind, name)["spec"]["template"]["spec"]


def pod_labels(docs: list[Manifest], kind: str = "Deployment", name: str = APP) -> dict:
    return find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def placeholder_secret(name: str, key: str) -> str:
    """Neither overlay reads a Secret into the environment (callers are a mounted file)."""
    pytest.fail(f"the container reads secret {name}/{key} into its environment")


@pytest.fixture(params=OVERLAYS)
def overlay(request, rendered) -> tuple[str, list[Manifest]]:
    return request.param, rendered[request.param]


def test_each_overlay_renders_the_whole_service(overlay):
    name, docs = overlay
    kinds = sorted(doc["kind"] for doc in docs)
    for kind in (
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ):
        assert kind in kinds, f"{name} renders no {kind}"
    # Secrets are created out of band (deploy/examples/secret.example.yaml), never rendered.
    assert "Secret" not in kinds
    namespace = find(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


def test_namespaces_enforce_the_restricted_pod_security_standard(overlay):
    _, docs = overlay
    labels = find(docs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def dockerfile_healthcheck() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", text, re.M)
    assert match, "the Dockerfile has no HEALTHCHECK in exec form"
    return json.loads(match.group(1))


def test_deployment_replicas_probes_and_resources(overlay):
    _, docs = overlay
    deployment = find(docs, "Deployment", APP)
    assert deployment["spec"]["replicas"] == 3
    pod = pod_spec(docs)
    assert [c["name"] for c in pod["containers"]] == [APP, PROXY]
    spec, proxy = container(docs), proxy_container(docs)
    env = container_env(docs, placeholder_secret)
    # gunicorn listens on loopback only, where kubelet's httpGet cannot reach: its startup
    # and liveness probes run the image's own HEALTHCHECK command, which reads GUNICORN_BIND.
    assert env["GUNICORN_BIND"].startswith("127.0.0.1:")
    assert "ports" not in spec, "gunicorn's port is not the pod's"
    for probe in ("startupProbe", "livenessProbe"):
        command = spec[probe]["exec"]["command"]
        assert [" ".join(part.split()) for part in command] == [
            " ".join(part.split()) for part in dockerfile_healthcheck()
        ]
        assert "'/healthz'" in command[-1]
    # Readiness as callers see it: /readyz through the proxy's port.
    proxy_ports = {port["name"]: port["containerPort"] for port in proxy["ports"]}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": proxy_ports["http"]}
    # The proxy's own probes ask nginx alone: a failing service must not restart its proxy.
    for probe in ("livenessProbe", "readinessProbe"):
        assert proxy[probe]["httpGet"] == {"path": "/_proxy/healthz", "port": "http"}
    assert proxy_ports == {"http": 8080}
    for each in (spec, proxy):
        for kind in ("requests", "limits"):
            assert set(each["resources"][kind]) == {"cpu", "memory"}
        assert each["imagePullPolicy"] == "Always"
    # The overlay names the registry and a tag (or digest), never "latest"; the proxy's
    # image is pinned to a release.
    assert spec["image"].startswith("registry.example.com/meeting-provisioning:")
    assert not spec["image"].endswith(":latest")
    assert re.fullmatch(r"docker\.io/nginxinc/nginx-unprivileged:\d+\.\d+\.\d+", proxy["image"])


def test_liveness_tolerates_a_worker_busy_for_the_whole_worker_timeout(overlay):
    _, docs = overlay
    env = container_env(docs, placeholder_secret)
    probe = container(docs)["livenessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] > float(env["GUNICORN_TIMEOUT"])


def test_pod_security_context_matches_the_image(overlay):
    _, docs = overlay
    pod = pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert pod["securityContext"]["fsGroup"] == dockerfile_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for spec in pod["containers"]:  # the image's user for both; nginx needs no other
        assert "runAsUser" not in spec["securityContext"]
        security = spec["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert spread == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_only_tmp_is_writable_and_holds_the_metrics_directory(overlay):
    _, docs = overlay
    pod = pod_spec(docs)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    tmp_volumes = set()
    for spec in pod["containers"]:
        mounts = {m["mountPath"]: m for m in spec["volumeMounts"]}
        writable = [path for path, m in mounts.items() if not m.get("readOnly")]
        assert writable == ["/tmp"], spec["name"]
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        tmp_volumes.add(mounts["/tmp"]["name"])
    assert len(tmp_volumes) == 2, "each container has its own /tmp"
    env = container_env(docs, placeholder_secret)
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_callers_file_is_the_mounted_secret(overlay):
    _, docs = overlay
    env = container_env(docs, placeholder_secret)
    mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
    directory, file_name = env["CLIENTS_FILE"].rsplit("/", 1)
    volume = {v["name"]: v for v in pod_spec(docs)["volumes"]}[mounts[directory]["name"]]
    assert volume["secret"]["secretName"] == "meeting-provisioning-callers"
    assert {"key": "clients.json", "path": file_name} in volume["secret"]["items"]


def test_grace_period_covers_the_pre_stop_delay_and_the_graceful_timeout(overlay):
    """gunicorn: one shutdown mechanism (PRE_STOP_DELAY_SECONDS, no preStop hook). The
    proxy: a preStop hook that keeps nginx accepting for the same PRE_STOP_DELAY_SECONDS
    (from the same ConfigMap), then quits gracefully and waits, so in-flight answers are
    delivered. terminationGracePeriodSeconds >= delay + GUNICORN_GRACEFUL_TIMEOUT + margin."""
    _, docs = overlay
    env = container_env(docs, placeholder_secret)
    delay = float(env["PRE_STOP_DELAY_SECONDS"])
    graceful = float(env["GUNICORN_GRACEFUL_TIMEOUT"])
    assert delay > 0, "without a pre-stop delay, connections routed during endpoint removal fail"
    assert "lifecycle" not in container(docs), "choose one pre-stop mechanism, not two"
    grace = pod_spec(docs)["terminationGracePeriodSeconds"]
    assert grace >= delay + graceful + SHUTDOWN_MARGIN
    proxy_env = container_env(docs, placeholder_secret, PROXY)
    assert proxy_env["PRE_STOP_DELAY_SECONDS"] == env["PRE_STOP_DELAY_SECONDS"]
    hook = proxy_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["/bin/sh", "-c"]
    steps = [step.strip() for step in hook[2].split(";")]
    assert steps[0] == 'sleep "$PRE_STOP_DELAY_SECONDS"'
    assert re.fullmatch(r"nginx -c (\S+) -e stderr -s quit", steps[1]), steps
    assert steps[2].startswith("while [ -e ")  # until the master has exited


def test_every_setting_is_one_the_service_reads(overlay):
    """A misspelt or renamed variable would silently fall back to its default."""
    _, docs = overlay
    read = "\n".join(path.read_text() for path in (REPO / "service").rglob("*.py"))
    for name in container_env(docs, placeholder_secret):
        assert f'"{name}"' in read, f"{name} is not read by service/"


def test_near_quota_alert_is_at_ninety_percent_of_the_configured_limit(overlay):
    _, docs = overlay
    limit = int(container_env(docs, placeholder_secret)["ORGANIZER_MONTHLY_LIMIT"])
    rules = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yaml").read_text())["groups"][0]
    [rule] = [r for r in rules["rules"] if r["alert"] == "MeetingProvisioningOrganizerNearQuota"]
    assert rule["expr"].endswith(f">= {int(limit * 0.9)}")


def test_the_service_accepts_the_rendered_settings(overlay, tmp_path: Path):
    """The ConfigMap and env of the pod, plus what the workload identity webhook injects,
    pass the service's own configuration check (service.config.Settings)."""
    name, docs = overlay
    env = container_env(docs, placeholder_secret)
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps({"clients": [{"id": "booking", "keySha256": "0" * 64, "organizers": ["*"]}]})
    )
    token = tmp_path / "azure-identity-token"
    token.write_text("header.payload.signature")
    env.update(
        {
            "CLIENTS_FILE": str(clients),
            "AZURE_TENANT_ID": TENANT,
            "AZURE_CLIENT_ID": CLIENT,
            "AZURE_FEDERATED_TOKEN_FILE": str(token),
            "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
        }
    )
    settings = Settings.from_env(env)
    assert settings.credential.kind == "federated"
    redis_url = urlsplit(settings.redis_url)
    if name == "prod":
        assert redis_url.scheme == "rediss+cluster", "production Redis: a cluster, over TLS"
        assert settings.redis.tls and settings.redis.topology == "cluster"
        assert redis_url.password is None and settings.redis.auth == "entra"
    else:
        assert redis_url.scheme == "redis"


def test_workload_identity(overlay):
    _, docs = overlay
    assert pod_labels(docs)["azure.workload.identity/use"] == "true"
    account = find(docs, "ServiceAccount", pod_spec(docs)["serviceAccountName"])
    annotations = account["metadata"]["annotations"]
    assert {"azure.workload.identity/client-id", "azure.workload.identity/tenant-id"} <= set(
        annotations
    )
    # No other credential may reach the pod: the service wants exactly one.
    env = container_env(docs, placeholder_secret)
    assert not {"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} & set(env)


def test_service_hpa_and_pdb_select_the_pods(overlay):
    _, docs = overlay
    labels = pod_labels(docs)
    deployment = find(docs, "Deployment", APP)
    assert selects(deployment["spec"]["selector"], labels)
    service = find(docs, "Service", APP)
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    port_names = {
        port["name"] for spec in pod_spec(docs)["containers"] for port in spec.get("ports", [])
    }
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    hpa = find(docs, "HorizontalPodAutoscaler", APP)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": APP,
    }
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = find(docs, "PodDisruptionBudget", APP)
    assert selects(pdb["spec"]["selector"], labels)
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


def egress_ports(policy: Manifest) -> dict[int, list[dict]]:
    ports: dict[int, list[dict]] = {}
    for rule in policy["spec"]["egress"]:
        for port in rule["ports"]:
            ports.setdefault(port["port"], []).extend(rule["to"])
    return ports


def test_network_policy(overlay):
    name, docs = overlay
    policy = find(docs, "NetworkPolicy", APP)
    assert selects(policy["spec"]["podSelector"], pod_labels(docs))
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    sources = set()
    for rule in policy["spec"]["ingress"]:
        assert [port["port"] for port in rule["ports"]] == [8080]
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector"}, "ingress by namespace only"
            sources.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    assert sources == {"booking-systems", "monitoring"}
    ports = egress_ports(policy)
    redis_url = urlsplit(container_env(docs, placeholder_secret)["REDIS_URL"])
    expected = {53, 443, redis_url.port}
    if redis_url.scheme.endswith("+cluster"):
        # The shards of Azure Managed Redis (OSS clustering policy) listen on 85xx ports,
        # learnt from the cluster: the range, to the Redis endpoint's subnet only.
        expected.add(8500)
        [shards] = [p for r in policy["spec"]["egress"] for p in r["ports"] if p["port"] == 8500]
        assert shards.get("endPort") == 8599
        assert ports[8500] == ports[redis_url.port]
    assert set(ports) == expected
    assert ports[53][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert ports[443] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]


def test_dev_runs_its_own_persistent_redis_without_eviction(rendered):
    docs = rendered["dev"]
    env = container_env(docs, placeholder_secret)
    url = urlsplit(env["REDIS_URL"])
    service = find(docs, "Service", "redis")
    assert url.hostname == "redis" and url.port == service["spec"]["ports"][0]["port"]
    statefulset = find(docs, "StatefulSet", "redis")
    redis_labels = pod_labels(docs, "StatefulSet", "redis")
    assert selects(statefulset["spec"]["selector"], redis_labels)
    assert all(redis_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    redis = container(docs, "StatefulSet", "redis")
    assert redis["args"] == ["redis-server", "/etc/redis/redis.conf"]
    config_volume = {v["name"]: v for v in pod_spec(docs, "StatefulSet", "redis")["volumes"]}
    config_map = find_by_name(docs, "ConfigMap", config_volume["config"]["configMap"]["name"])
    directives = dict(
        line.split(None, 1)
        for line in config_map["data"]["redis.conf"].splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert directives["appendonly"] == "yes"
    assert directives["maxmemory-policy"] == "noeviction"
    mounts = {m["name"]: m["mountPath"] for m in redis["volumeMounts"]}
    assert mounts["data"] == directives["dir"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert redis["securityContext"]["readOnlyRootFilesystem"] is True
    # The service may reach Redis, and Redis accepts only the service.
    ours = find(docs, "NetworkPolicy", APP)
    assert any(
        peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "redis"}
        for peer in egress_ports(ours)[url.port]
    )
    theirs = find(docs, "NetworkPolicy", "redis")
    assert selects(theirs["spec"]["podSelector"], redis_labels)
    assert theirs["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}}}],
            "ports": [{"protocol": "TCP", "port": 6379}],
        }
    ]
    assert "egress" not in theirs["spec"] and "Egress" in theirs["spec"]["policyTypes"]


def test_prod_logs_in_to_a_managed_redis_over_tls_with_entra_id_tokens(rendered):
    """Azure Managed Redis with access keys disabled: the Workload Identity's tokens, no
    password in REDIS_URL and no Redis key in any Secret (issue 22)."""
    docs = rendered["prod"]
    assert not [doc for doc in docs if doc["kind"] == "StatefulSet"]
    env = container_env(docs, placeholder_secret)
    assert env["REDIS_AUTH"] == "entra"
    url = urlsplit(env["REDIS_URL"])
    assert url.scheme == "rediss+cluster" and url.password is None and "@" not in url.netloc
    references = [
        entry["valueFrom"]["secretKeyRef"]["name"]
        for entry in container(docs)["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    ]
    assert not references, references
    assert pod_labels(docs)["azure.workload.identity/use"] == "true"
    config_map = find(docs, "ConfigMap", APP)
    assert "REDIS_URL" not in config_map["data"]


def test_the_example_secret_is_only_an_example():
    path = DEPLOY / "examples" / "secret.example.yaml"
    secrets = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(path.read_text())}
    assert set(secrets) == {"meeting-provisioning-callers"}
    clients = json.loads(secrets["meeting-provisioning-callers"]["stringData"]["clients.json"])
    for client in clients["clients"]:
        assert not re.fullmatch(r"[0-9a-f]{64}", client["keySha256"]), "no real key hashes"
        assert client["keySha256"].startswith("<")
    # Never part of an overlay.
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        references = spec.get("resources", []) + [
            p.get("path", "") for p in spec.get("patches", [])
        ]
        assert not [r for r in references if "examples" in r], kustomization


def test_a_release_pinned_by_digest_renders_with_the_digest(tmp_path):
    """What docs/operations.md says to do at release time works: the overlay's images
    entry, with a digest instead of the tag, reaches the Deployment."""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    kustomization = tmp_path / "deploy" / "overlays" / "prod" / "kustomization.yaml"
    digest = "sha256:" + "0123456789abcdef" * 4
    text = kustomization.read_text()
    assert "    newTag: 0.1.0\n" in text
    kustomization.write_text(text.replace("    newTag: 0.1.0\n", f"    digest: {digest}\n"))
    image = container(render(kustomization.parent))["image"]
    assert image == f"registry.example.com/meeting-provisioning@{digest}"


def envsubst(text: str, names: list[str], env: dict[str, str]) -> str:
    """envsubst with a SHELL-FORMAT list, where the gettext tool is missing: the listed
    ${NAME} and $NAME are replaced (by nothing if undefined), everything else is kept."""
    for name in names:
        text = re.sub(rf"\$(\{{{name}\}}|{name}(?![A-Za-z0-9_]))", env.get(name, ""), text)
    return text


def sidecar_command(docs: list[Manifest]) -> tuple[list[str], str, str, str]:
    """The proxy's start command: (envsubst's variable list, template path, output path,
    the nginx command line)."""
    proxy = proxy_container(docs)
    assert proxy["command"][:2] == ["/bin/sh", "-c"]
    match = re.fullmatch(
        r"envsubst '([^']*)' < (\S+) > (\S+) && exec (nginx .*)", proxy["command"][2]
    )
    assert match, proxy["command"]
    names = re.findall(r"\$\{([A-Z0-9_]+)\}", match.group(1))
    return names, match.group(2), match.group(3), match.group(4)


def test_the_proxy_sidecar_renders_the_one_template_into_a_valid_configuration(
    overlay, tmp_path: Path
):
    """The sidecar renders deploy/base/proxy/nginx.conf.template (the file `make run` and
    the tests use) with its own environment; the result passes `nginx -t`."""
    _, docs = overlay
    names, template_path, output, nginx = sidecar_command(docs)
    assert set(names) == proxy_placeholders(), "envsubst must list every placeholder"
    # The template reaches the container from the ConfigMap generated from the file.
    proxy = proxy_container(docs)
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    volume = {v["name"]: v for v in pod_spec(docs)["volumes"]}["proxy-config"]
    config_map = find_by_name(docs, "ConfigMap", volume["configMap"]["name"])
    directory, file_name = template_path.rsplit("/", 1)
    assert mounts["proxy-config"] == directory
    assert config_map["data"][file_name] == PROXY_TEMPLATE.read_text()
    # Every placeholder has a value in the container's environment.
    env = container_env(docs, placeholder_secret, PROXY)
    assert set(names) <= set(env), set(names) - set(env)
    assert output.startswith("/tmp/") and env["PROXY_STATE_DIR"] == "/tmp"
    assert shlex.split(nginx) == ["nginx", "-c", output, "-e", "stderr"]
    # Rendered as in the pod (the real envsubst when installed), equal to make run's.
    template = PROXY_TEMPLATE.read_text()
    if shutil.which("envsubst"):
        rendered = subprocess.run(
            ["envsubst", " ".join(f"${{{name}}}" for name in names)],
            input=template,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    else:
        rendered = envsubst(template, names, env)
    assert rendered == render_proxy_config(env)
    # nginx accepts it (with a writable directory standing in for the sidecar's /tmp).
    config = tmp_path / "nginx.conf"
    config.write_text(render_proxy_config({**env, "PROXY_STATE_DIR": str(tmp_path)}))
    result = subprocess.run(
        [nginx_executable(), "-t", "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_only_the_proxy_reaches_gunicorn_and_both_agree_on_limits(overlay):
    _, docs = overlay
    env = container_env(docs, placeholder_secret)
    proxy_env = container_env(docs, placeholder_secret, PROXY)
    # gunicorn on the pod's loopback; nginx proxies there and listens on the pod's port,
    # which the Service targets and the NetworkPolicy opens.
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["GUNICORN_BIND"])
    assert proxy_env["GUNICORN_BIND"] == env["GUNICORN_BIND"]
    [http] = proxy_container(docs)["ports"]
    assert proxy_env["PROXY_LISTEN"] == str(http["containerPort"])
    assert http["containerPort"] != int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
    policy = find(docs, "NetworkPolicy", APP)
    assert {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]} == {
        http["containerPort"]
    }
    # The body limit and the request budget: the same values for the service and nginx.
    for name in ("MAX_BODY_BYTES", "GUNICORN_TIMEOUT"):
        assert proxy_env[name] == env[name]
    assert int(env["MAX_BODY_BYTES"]) == int(MAX_BODY_BYTES.default)
    assert re.fullmatch(r"\d+", env["GUNICORN_TIMEOUT"]), "nginx takes whole seconds"
    annotations = find(docs, "Deployment", APP)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(http["containerPort"])
