"""deploy/: the Prometheus alert rules and the Grafana dashboard name only metrics that the
worker's /metrics serves, and the rules pass promtool (where it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from stream.metrics import Metrics, RecentSync
from stream.ops.prometheus import render_prometheus

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "cohort-sync-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "cohort-sync-dashboard.json"
METRIC = re.compile(r"\b(?:cohort_sync|process|python)_[a-z0-9_]+\b")


def served_names() -> set[str]:
    """Every sample name /metrics serves, with every labelled family filled in."""
    metrics = Metrics()
    metrics.synced(RecentSync("d", "c", 0, {}, "k"))
    metrics.upload_errors[("d", "permanent")] += 1
    metrics.queued_syncs["d"] = 1
    text = render_prometheus(metrics, {0: 1}, {0: 1.0}).decode()
    return {re.split(r"[{ ]", line)[0] for line in text.splitlines() if not line.startswith("#")}


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in panels
        for target in panel["targets"]
    }


@pytest.mark.parametrize("source", [rule_expressions, dashboard_expressions])
def test_every_metric_named_is_one_the_worker_serves(
    source: Callable[[], dict[str, str]],
) -> None:
    expressions = source()
    served = served_names()
    assert len(expressions) >= 10
    for where, expr in expressions.items():
        named = set(METRIC.findall(expr))
        assert named, f"{where}: names no metric of the worker: {expr}"
        assert named <= served, f"{where}: not served: {sorted(named - served)}"


def test_the_check_fails_on_a_metric_that_is_not_served() -> None:
    assert "cohort_sync_events_total" in served_names()
    assert "cohort_sync_event_total" not in served_names()
    assert set(METRIC.findall("rate(cohort_sync_event_total[5m])")) == {"cohort_sync_event_total"}


def test_the_dashboard_reads_from_its_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "cohort-sync"
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"${datasource}"}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool is not installed (Debian: prometheus)")
def test_the_rules_pass_promtool_check_and_their_unit_tests() -> None:
    assert promtool is not None
    for command in (
        ["check", "rules", RULES.name],
        ["test", "rules", "cohort-sync-rules.test.yml"],
    ):
        result = subprocess.run(
            [promtool, *command], cwd=RULES.parent, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
