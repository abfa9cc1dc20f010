"""The scanners of `make check-deploy` on the real files (only the documented checkov skips),
and on broken copies: each must be able to fail."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.tooling import DEPLOY, OVERLAYS, REPO, Manifest, find, run_tool

pytestmark = pytest.mark.deploy

KUBERNETES_VERSION = "1.37.0"
CHECKOV = ("--quiet", "--compact", "--skip-download")
# Every checkov skip, by overlay, check and resource. The reasons are next to the resources
# (checkov.io/skip annotations); a new skip must be added here too, so it gets reviewed.
EXPECTED_SKIPS = {
    ("dev", "CKV_K8S_43", "Deployment.meeting-provisioning-dev.meeting-provisioning"),
    ("dev", "CKV_K8S_43", "StatefulSet.meeting-provisioning-dev.redis"),
    ("prod", "CKV_K8S_43", "Deployment.meeting-provisioning.meeting-provisioning"),
}


def write_docs(path: Path, docs: list[Manifest]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def checkov_json(*args: str) -> dict:
    # Not --quiet: with it the JSON report leaves out the passed and skipped checks.
    result = run_tool("checkov", "--compact", "--skip-download", "--output", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert len(reports) == 1, reports
    return reports[0]


def kubernetes_validate(path: Path):
    return run_tool(
        "kubernetes-validate",
        "--strict",
        "--quiet",
        "--kubernetes-version",
        KUBERNETES_VERSION,
        str(path),
    )


def broken_deployment(docs: list[Manifest]) -> tuple[list[Manifest], Manifest]:
    docs = copy.deepcopy(docs)
    return docs, find(docs, "Deployment", "meeting-provisioning")


@pytest.fixture(scope="module")
def rendered_files(rendered, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("rendered")
    return {name: write_docs(directory / f"{name}.yaml", rendered[name]) for name in OVERLAYS}


# --- the real files ----------------------------------------------------------------------


def test_kubernetes_validate_accepts_both_overlays(rendered_files):
    for path in rendered_files.values():
        result = kubernetes_validate(path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_with_only_the_documented_skips(rendered_files):
    arguments = [part for path in rendered_files.values() for part in ("-f", str(path))]
    report = checkov_json("--framework", "kubernetes", *arguments)
    summary = report["summary"]
    assert summary["failed"] == 0, report["results"]["failed_checks"]
    assert summary["parsing_errors"] == 0
    documents = sum(len(list(yaml.safe_load_all(p.read_text()))) for p in rendered_files.values())
    assert summary["resource_count"] >= documents
    assert summary["passed"] > 200
    skips = set()
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{skipped['check_id']} needs its reason"
        overlay = Path(skipped["file_path"]).stem
        skips.add((overlay, skipped["check_id"], skipped["resource"]))
    assert skips == EXPECTED_SKIPS


def test_checkov_passes_the_dockerfile_without_skips():
    summary = checkov_json("--framework", "dockerfile", "-f", "Dockerfile")["summary"]
    assert (summary["failed"], summary["skipped"]) == (0, 0)
    assert summary["passed"] > 20


# --- broken copies -----------------------------------------------------------------------


def test_kubernetes_validate_fails_on_an_unknown_field(rendered, tmp_path):
    docs, deployment = broken_deployment(rendered["dev"])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = (
        True
    )
    result = kubernetes_validate(write_docs(tmp_path / "dev.yaml", docs))
    assert result.returncode != 0
    assert "readOnlyRootFS" in result.stdout + result.stderr


def test_kubernetes_validate_fails_on_a_wrong_type(rendered, tmp_path):
    docs, deployment = broken_deployment(rendered["prod"])
    deployment["spec"]["replicas"] = "three"
    result = kubernetes_validate(write_docs(tmp_path / "prod.yaml", docs))
    assert result.returncode != 0


def test_checkov_fails_on_a_writable_root_filesystem_run_as_root(rendered, tmp_path):
    docs, deployment = broken_deployment(rendered["dev"])
    pod = deployment["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"], pod["securityContext"]["runAsUser"]
    security = pod["containers"][0]["securityContext"]
    security["readOnlyRootFilesystem"] = False
    del security["runAsNonRoot"]
    report = checkov_json(
        "--framework", "kubernetes", "-f", str(write_docs(tmp_path / "dev.yaml", docs))
    )
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert {"CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_40"} <= failed


def test_hadolint_and_checkov_fail_on_a_worse_dockerfile(tmp_path):
    dockerfile = (REPO / "Dockerfile").read_text()
    worse = dockerfile.replace("USER 10001:10001\n", "")
    worse = re.sub(
        r"^ENTRYPOINT \[.*\]$",
        "ENTRYPOINT gunicorn -c python:service.gunicorn_conf service.wsgi:app",
        worse,
        flags=re.M,
    )
    worse = worse.replace("pip install --no-cache-dir", "pip install")
    assert worse != dockerfile
    path = tmp_path / "Dockerfile"
    path.write_text(worse)
    hadolint = run_tool("hadolint", str(path))
    assert hadolint.returncode != 0
    assert "DL3025" in hadolint.stdout and "DL3042" in hadolint.stdout
    failed = checkov_json("--framework", "dockerfile", "-f", str(path))["results"]["failed_checks"]
    assert "CKV_DOCKER_3" in {check["check_id"] for check in failed}


def test_checkov_finds_a_secret_committed_under_deploy(tmp_path):
    leak = tmp_path / "deploy" / "leak.yaml"
    leak.parent.mkdir()
    # Made up here, so no file of the repository looks like a key to a scanner.
    marker = "RSA " + "PRIVATE KEY"
    body = base64.b64encode(bytes(range(48))).decode()
    leak.write_text(
        f"stringData:\n  key.pem: |\n    -----BEGIN {marker}-----\n"
        f"    {body}\n    -----END {marker}-----\n"
    )
    result = run_tool("checkov", *CHECKOV, "--framework", "secrets", "-d", str(leak.parent))
    assert result.returncode != 0
    assert "CKV_SECRET_13" in result.stdout


def test_promtool_fails_on_a_broken_rule_and_on_a_changed_threshold(tmp_path):
    rules = (DEPLOY / "monitoring" / "alerts.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        rules.replace(
            "max by (namespace) (mps_redis_up) == 0", "max by (namespace (mps_redis_up) == 0"
        )
    )
    assert run_tool("promtool", "check", "rules", str(broken)).returncode != 0

    (tmp_path / "alerts.yaml").write_text(rules.replace("> 0.05", "> 0.5"))
    tests = (DEPLOY / "monitoring" / "alerts.test.yaml").read_text()
    (tmp_path / "alerts.test.yaml").write_text(tests)
    result = run_tool("promtool", "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "MeetingProvisioningHighErrorRatio" in result.stdout + result.stderr
