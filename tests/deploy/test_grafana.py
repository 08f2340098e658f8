"""deploy/grafana: every dashboard query parses as PromQL (``promtool check rules`` on a generated rules
file) and names only series that exist: metrics the service exports or our recording rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from service.monitoring.metrics import ServiceMetrics
from tests.deploy.test_prometheus_rules import promtool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "calibration.json"


def queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    return exprs


def known_series() -> set[str]:
    names = set()
    for family in ServiceMetrics().registry.collect():  # counters expose <name>_total, histograms _bucket …
        names |= {family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_sum",
                  f"{family.name}_count"}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "calibration.rules.yml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names | {"ALERTS"}


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    exprs = [e.replace("$__rate_interval", "5m").replace("$model", ".+").replace("$version", ".+") for e in queries()]
    assert len(exprs) >= 12
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_queries_name_only_existing_series() -> None:
    known = known_series()
    for expr in queries():
        names = set(re.findall(r"\b(calibserve[:_][a-z0-9_:]+|ALERTS)\b", expr))
        assert names and names <= known, (expr, names - known)


def test_dashboard_has_the_four_views() -> None:
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"])
    for needle in ("ECE over time", "Reliability diagram", "coverage", "drift"):
        assert needle.lower() in titles.lower(), needle


def test_grafana_is_provisioned_with_this_dashboard() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "calibserve.yml").read_text())["providers"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())["services"]
    mounts = dict(v.rsplit(":", 2)[:2] for v in compose["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert Path(mounts["./deploy/grafana/calibration.json"]).parent == Path(provider["options"]["path"])
    assert "prometheus" in compose and compose["grafana"]["depends_on"] == ["prometheus"]


def test_dashboard_covers_serving_and_the_prediction_log() -> None:
    exprs = " ".join(queries())
    for series in ("calibserve_request_duration_seconds_bucket", "calibserve_predictions_total",
                   "calibserve_prediction_log_dropped_total", "calibserve_prediction_log_queue_depth",
                   "calibserve:calibration_bin_count:increase1h", "ALERTS"):
        assert series in exprs, series
