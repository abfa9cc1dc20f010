"""The rendered overlays (kustomize) against what the service and the image need: probes,
security context, the shutdown arithmetic, settings the service accepts, Redis per
overlay, the network policy, workload identity. The scanners run in `make check-deploy`
and tests/deploy/test_deploy_scanners.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.config import Settings
from tests.deploy.tooling import (
    DEPLOY,
    OVERLAYS,
    REPO,
    Manifest,
    container,
    container_env,
    find,
    find_by_name,
    render,
)

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
    return {("meeting-provisioning-redis", "access-key"): "pa%2Fss%2Bword%3D"}[(name, key)]


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


def test_deployment_replicas_probes_and_resources(overlay):
    _, docs = overlay
    deployment = find(docs, "Deployment", APP)
    assert deployment["spec"]["replicas"] == 3
    spec = container(docs)
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert spec[probe]["httpGet"]["port"] in ports
    # The image listens where GUNICORN_BIND says (Dockerfile ENV), on the probed port.
    assert "GUNICORN_BIND=0.0.0.0:8080" in (REPO / "Dockerfile").read_text()
    assert ports["http"] == 8080
    for kind in ("requests", "limits"):
        assert set(spec["resources"][kind]) == {"cpu", "memory"}
    # The overlay names the registry and a tag (or digest), never "latest".
    assert spec["image"].startswith("registry.example.com/meeting-provisioning:")
    assert not spec["image"].endswith(":latest")


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
    security = container(docs)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert spread == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_only_tmp_is_writable_and_holds_the_metrics_directory(overlay):
    _, docs = overlay
    pod = pod_spec(docs)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
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
    """One shutdown mechanism (PRE_STOP_DELAY_SECONDS, no preStop hook), and
    terminationGracePeriodSeconds >= delay + GUNICORN_GRACEFUL_TIMEOUT + margin."""
    _, docs = overlay
    env = container_env(docs, placeholder_secret)
    delay = float(env["PRE_STOP_DELAY_SECONDS"])
    graceful = float(env["GUNICORN_GRACEFUL_TIMEOUT"])
    assert delay > 0, "without a pre-stop delay, connections routed during endpoint removal fail"
    assert "lifecycle" not in container(docs), "choose one pre-stop mechanism, not two"
    grace = pod_spec(docs)["terminationGracePeriodSeconds"]
    assert grace >= delay + graceful + SHUTDOWN_MARGIN


def test_every_setting_is_one_the_service_reads(overlay):
    """A misspelt or renamed variable would silently fall back to its default."""
    _, docs = overlay
    read = "\n".join(path.read_text() for path in (REPO / "service").glob("*.py"))
    for name in container_env(docs, placeholder_secret):
        if name != "REDIS_ACCESS_KEY":  # only substituted into REDIS_URL
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
        assert redis_url.scheme == "rediss", "production Redis is reached over TLS"
        assert redis_url.password == "pa%2Fss%2Bword%3D"
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
    port_names = {port["name"] for port in container(docs)["ports"]}
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
    assert set(ports) == {
        53,
        443,
        urlsplit(container_env(docs, placeholder_secret)["REDIS_URL"]).port,
    }
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


def test_prod_uses_a_managed_redis_over_tls_with_the_key_from_a_secret(rendered):
    docs = rendered["prod"]
    assert not [doc for doc in docs if doc["kind"] == "StatefulSet"]
    env_entries = container(docs)["env"]
    names = [entry["name"] for entry in env_entries]
    # $(REDIS_ACCESS_KEY) is only expanded if it is defined before REDIS_URL.
    assert names.index("REDIS_ACCESS_KEY") < names.index("REDIS_URL")
    key = env_entries[names.index("REDIS_ACCESS_KEY")]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "meeting-provisioning-redis", "key": "access-key"}
    config_map = find(docs, "ConfigMap", APP)
    assert "REDIS_URL" not in config_map["data"]


def test_the_example_secret_is_only_an_example():
    path = DEPLOY / "examples" / "secret.example.yaml"
    secrets = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(path.read_text())}
    assert set(secrets) == {"meeting-provisioning-callers", "meeting-provisioning-redis"}
    clients = json.loads(secrets["meeting-provisioning-callers"]["stringData"]["clients.json"])
    for client in clients["clients"]:
        assert not re.fullmatch(r"[0-9a-f]{64}", client["keySha256"]), "no real key hashes"
        assert client["keySha256"].startswith("<")
    assert secrets["meeting-provisioning-redis"]["stringData"]["access-key"].startswith("<")
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
