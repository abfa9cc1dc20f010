"""deploy/monitoring/: every alert and every dashboard panel queries metrics the service
exports (service/foundation/metrics.py), the queries parse (promtool), and every alert has a runbook
section in docs/operations.md. `make check-deploy` runs `promtool check rules` and
`promtool test rules` on the alerts themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.foundation import metrics
from tests.deploy.tooling import DEPLOY, REPO, run_tool

pytestmark = pytest.mark.deploy

MONITORING = DEPLOY / "monitoring"
# Series that Prometheus itself makes, not the service.
PROMETHEUS_SERIES = {"up"}

KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_series() -> set[str]:
    """The sample names service/foundation/metrics.py exposes."""
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    assert names, "service/foundation/metrics.py defines no metrics?"
    return names | set(metrics.SCRAPE_TIME_GAUGES)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed)."""
    text = re.sub(r"\$\{?\w+\}?", "x", expr)  # $namespace, ${datasource}, $__rate_interval
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*|([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if name and not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "dashboard.json").read_text())


def all_panels() -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_panels() -> list[dict[str, Any]]:
    """The panels that show data (not rows)."""
    return [panel for panel in all_panels() if panel["type"] != "row"]


def check_known(names: set[str], where: str) -> None:
    known = exported_series() | PROMETHEUS_SERIES
    assert names, f"{where}: no metric found in the expression"
    unknown = names - known
    assert not unknown, (
        f"{where}: {sorted(unknown)} are not exported by service/foundation/metrics.py"
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{route=~"/v1/.*"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum(rate(b[$__rate_interval]))) > 5", {"b"}),
        ("x / on (pod) group_left y offset 5m and z", {"x", "y", "z"}),
        ('topk(10, max by (organizer) (c{namespace="$namespace"})) >= 1.8e3', {"c"}),
    ],
)
def test_metric_names_of_an_expression(expr, names):
    assert metric_names(expr) == names


def test_alerts_query_exported_metrics_and_are_documented():
    runbook = (REPO / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        name = rule["alert"]
        check_known(metric_names(rule["expr"]), name)
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        document, anchor = rule["annotations"]["runbook"].split("#")
        assert document == "docs/operations.md"
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section"


def test_every_alert_has_a_unit_test():
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert firing == {rule["alert"] for rule in alert_rules()}


def test_dashboard_panels_query_exported_metrics():
    panels = dashboard_panels()
    assert len(panels) >= 10
    ids = [panel["id"] for panel in all_panels()]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            check_known(metric_names(target["expr"]), f"panel {panel['title']!r}")
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["query"]["query"])
            assert metric, variable
            check_known({metric.group(1)}, f"variable {variable['name']}")


def test_dashboard_queries_are_valid_promql(tmp_path: Path):
    """promtool parses each panel's query, as a recording rule with the variables filled."""
    rules = []
    for index, panel in enumerate(dashboard_panels()):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$namespace", "x")
            assert "$" not in expr, f"unknown variable in {expr}"
            rules.append({"record": f"dashboard:panel_{index}:{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_tool("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
