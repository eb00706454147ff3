"""The deployment a user copies (docker-compose.yml, Dockerfile, config/, grafana/) agrees with the
code: every mounted file exists; ports, commands and environment match the daemon and its
config; Prometheus's config and rules pass `promtool` (their unit tests too), Alertmanager's
`amtool` and routes by severity and owner; every dashboard query parses and names a metric the
exporter exports; every runbook link has its anchor in the README. No Docker engine needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from missing_part import missing
from sqlalchemy.engine import make_url

from monitor.api.app import create_app
from monitor.cli import build_parser
from monitor.config import Settings, load_settings
from monitor.daemon.app import build_services
from monitor.metrics.exporter import METRICS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text(encoding="utf-8"))
ALERTS = yaml.safe_load((ROOT / "config" / "alerts.yml").read_text(encoding="utf-8"))
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
EXPORTED = {spec.name for spec in METRICS} | {"aiqm_feature_info", "aiqm_build_info"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is missing: apt-get install prometheus prometheus-alertmanager (.ci/run does)"
        missing(message)
    return found


def run(*command: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def bind_mounts(service: str) -> list[tuple[Path, str]]:
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((ROOT / source).resolve(), target))
    return mounts


def daemon_port() -> int:
    command = SERVICES["aiqm"]["command"]
    return int(command[command.index("--port") + 1])


# --------------------------------------------------------------------------- docker compose


def test_every_mounted_file_exists_and_the_image_builds_from_here() -> None:
    assert SERVICES.keys() >= {"aiqm", "postgres", "prometheus", "alertmanager", "grafana"}
    for service in SERVICES:
        for source, _target in bind_mounts(service):
            assert source.exists(), f"{service} mounts {source}, which does not exist"
    assert SERVICES["aiqm"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE):
        for path in copied.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"


def test_the_daemon_command_port_and_database_agree_with_the_code() -> None:
    daemon = SERVICES["aiqm"]
    args = build_parser().parse_args(daemon["command"])
    assert args.host == "0.0.0.0" and args.port == daemon_port()
    assert f"{daemon_port()}:{daemon_port()}" in daemon["ports"]
    config = dict(bind_mounts("aiqm"))
    config_path = {target: source for source, target in config.items()}[str(args.config)]
    assert config_path == (ROOT / "config" / "aiqm.yaml").resolve()
    # The Dockerfile's default command serves on the same port.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"EXPOSE {daemon_port()}" in dockerfile
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE).group(1))  # type: ignore[union-attr]
    default = build_parser().parse_args(cmd)
    assert (default.host, default.port) == ("0.0.0.0", daemon_port())
    # AIQM_DATABASE_URL reaches the PostgreSQL service with its user, password and database.
    url = make_url(daemon["environment"]["AIQM_DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert url.get_backend_name() == "postgresql" and url.host == "postgres" and url.port == 5432
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert "postgres" in daemon["depends_on"]


def test_the_config_file_loads_with_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVICES["aiqm"]["environment"].items():
        monkeypatch.setenv(name, value)
    settings = load_settings(ROOT / "config" / "aiqm.yaml")
    assert settings.resolved_database_url == SERVICES["aiqm"]["environment"]["AIQM_DATABASE_URL"]


def test_prometheus_scrapes_the_daemon_and_alerts_alertmanager() -> None:
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    aiqm = jobs["aiqm"]
    assert aiqm["metrics_path"] == "/metrics"
    targets = [t for group in aiqm["static_configs"] for t in group["targets"]]
    assert targets == [f"aiqm:{daemon_port()}"]
    assert aiqm["metrics_path"] in create_app(_services()).openapi()["paths"]
    managers = [
        t for m in PROMETHEUS["alerting"]["alertmanagers"] for g in m["static_configs"] for t in g["targets"]
    ]
    assert managers == ["alertmanager:9093"] and "9093:9093" in SERVICES["alertmanager"]["ports"]
    mounted = {target for _source, target in bind_mounts("prometheus")}
    config_dir = Path("/etc/prometheus")
    for rule_file in PROMETHEUS["rule_files"]:
        assert str(config_dir / rule_file) in mounted
        assert (ROOT / "config" / rule_file).exists()
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in SERVICES["alertmanager"]["command"]
    assert any(target == "/etc/alertmanager/alertmanager.yml" for _s, target in bind_mounts("alertmanager"))


def _services() -> Any:
    from sqlalchemy import create_engine

    return build_services(Settings(), engine=create_engine("sqlite://"), scheduler=False)


# --------------------------------------------------------------------------- promtool, amtool


def test_promtool_accepts_the_config_and_the_rules_and_their_tests_pass() -> None:
    promtool = tool("promtool")
    run(promtool, "check", "config", "config/prometheus.yml")
    run(promtool, "check", "rules", "config/alerts.yml")
    out = run(promtool, "test", "rules", "alerts_test.yml", cwd=ROOT / "config")
    assert "SUCCESS" in out


def test_every_alert_has_for_severity_numbers_and_a_runbook() -> None:
    rules = [rule for group in ALERTS["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert names >= {
        "AIQMTriggerFiring",
        "AIQMFeatureStale",
        "AIQMQualityBelowFloor",
        "AIQMCycleOverdue",
        "AIQMDaemonDown",
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    anchors = {_slug(heading) for heading in re.findall(r"^#+ (.+)$", readme, re.MULTILINE)}
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations)
        if "feature" in rule["expr"]:
            assert "$labels.feature" in annotations["summary"] + annotations["description"]
            assert "group_left (owner" in rule["expr"], f"{rule['alert']} carries no owner"
        if "aiqm_" in rule["expr"]:  # a feature's numbers, not only that something is wrong
            text = annotations["summary"] + annotations["description"]
            assert "$value" in text or "query" in text, rule["alert"]
        anchor = annotations["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]
        for metric in re.findall(r"\b(aiqm_[a-z_]+)", rule["expr"] + json.dumps(annotations)):
            assert metric in EXPORTED, f"{rule['alert']} reads {metric}, which /metrics does not export"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_alertmanager_routes_by_severity_and_owner() -> None:
    amtool = tool("amtool")
    run(amtool, "check-config", "config/alertmanager.yml")

    def receivers(*labels: str) -> str:
        out = run(amtool, "config", "routes", "test", "--config.file=config/alertmanager.yml", *labels)
        return out.strip().splitlines()[-1] if "Warning" not in out.splitlines()[-1] else out.splitlines()[0]

    assert receivers("alertname=AIQMDaemonDown", "severity=critical") == "aiqm-oncall"
    critical = receivers("alertname=AIQMQualityBelowFloor", "severity=critical", "owner=ops-ml@example.com")
    assert critical == "aiqm-oncall,team-ops-ml"
    assert receivers("severity=warning", "owner=ops-ml@example.com") == "team-ops-ml"
    assert receivers("severity=warning", "owner=someone@example.com") == "aiqm-owners"
    assert receivers("severity=warning", "owner=unassigned") == "aiqm-default"


# --------------------------------------------------------------------------- grafana


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every panel target and variable query."""
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


def test_grafana_provisioning_mounts_datasource_and_dashboards() -> None:
    datasources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    (source,) = datasources
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/aiqm.yml").read_text(encoding="utf-8")
    )["providers"]
    mounts = dict(bind_mounts("grafana"))
    assert mounts[(ROOT / "grafana/dashboards").resolve()] == providers[0]["options"]["path"]
    assert mounts[(ROOT / "grafana/provisioning/datasources").resolve()].endswith("provisioning/datasources")
    assert mounts[(ROOT / "grafana/provisioning/dashboards").resolve()].endswith("provisioning/dashboards")
    assert {path.name for path in DASHBOARDS} == {"aiqm-overview.json", "aiqm-feature.json"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["feature"]["datasource"]["uid"] == source["uid"]
        for panel in board["panels"]:
            assert panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
            if (
                panel["type"] in ("timeseries", "stat", "bargauge")
                and "mappings" not in panel["fieldConfig"]["defaults"]
            ):
                assert "unit" in panel["fieldConfig"]["defaults"] or any(
                    o["properties"][0]["id"] == "unit" for o in panel["fieldConfig"]["overrides"]
                ), f"{path.name}: {panel['title']} has no unit"
        text = path.read_text(encoding="utf-8")
        assert "${DS_" not in text, "an export placeholder: provisioning does not resolve it"
    feature = json.loads((ROOT / "grafana/dashboards/aiqm-feature.json").read_text(encoding="utf-8"))
    assert [v["name"] for v in feature["templating"]["list"]] == ["feature"]
    assert all("$feature" in expr for name, _t, expr in dashboard_queries() if name == "aiqm-feature.json")


def concrete(expr: str, feature: str = "support-reply") -> str:
    """A panel's PromQL as Grafana sends it, for one feature."""
    return (
        expr.replace("$feature", feature)
        .replace("$__rate_interval", "2m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
    )


def test_every_dashboard_query_parses_and_reads_exported_metrics(tmp_path: Path) -> None:
    promtool = tool("promtool")
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"panel_{i}", "expr": concrete(expr)} for i, (_, _, expr) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    run(promtool, "check", "rules", str(path))
    for name, title, expr in queries:
        for metric in re.findall(r"\b(aiqm_[a-z_]+)", expr):
            assert metric in EXPORTED, f"{name}: {title} reads {metric}, which /metrics does not export"
