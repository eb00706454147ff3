"""End to end with the real parts: `aiqm serve` scraped by Debian's Prometheus, the rules firing,
Alertmanager delivering to a webhook.

A degrading history goes in through the command line (`aiqm ingest`, `aiqm labels import`, then
`aiqm cycle --at` week after week until quality collapses and fallback fires); a real
`python -m monitor serve` serves it. Prometheus (1 s scrape and evaluation, the repository's
alert rules with their `for:` shortened) and Alertmanager (the repository's routing, its
webhooks pointed at a receiver in this test) run on free loopback ports from temporary
directories, never as the system's services. Every PromQL expression of every dashboard panel
must return data through Prometheus's HTTP API, every rule must load, the floor alert must fire
and reach the webhook with the feature and its owner. Under CI=true a missing binary fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from missing_part import missing
from test_deploy_config import concrete, dashboard_queries

from monitor.demo.simulate import CHANNELS, LANGUAGES, WEEK, HistorySpec, write_history

pytestmark = pytest.mark.slow

CliRunner = Callable[..., Any]  # the `aiqm` fixture of tests/conftest.py
ROOT = Path(__file__).resolve().parent.parent
FEATURE = "support-reply"
OWNER = "support-quality@example.com"
WEEKS = 8
DEADLINE = 45.0  # seconds for the whole Prometheus/Alertmanager part


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' or '.join(names)} is missing: apt-get install prometheus prometheus-alertmanager"
    missing(message)


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every probe stays bound until all are chosen."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def wait_for(what: str, check: Callable[[], Any], until: float, logs: list[Path]) -> Any:
    """Call `check` until it returns something truthy; fail (with the processes' logs) at `until`."""
    last: Any = None
    while time.monotonic() < until:
        try:
            last = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    tails = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists()
    )
    pytest.fail(f"timed out waiting for {what}; last: {last!r}\n{tails}")


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.running.append(process)
        return process

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def degrading_history(aiqm: CliRunner, folder: Path) -> Path:
    """The config, and a store whose feature fell under its floor, through the command line."""
    config = folder / "aiqm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{folder / 'aiqm.sqlite3'}",
                "defaults": {"judges": [{"kind": "length", "min_chars": 60}]},
                "features": {FEATURE: {"owner": OWNER, "decision_owner": "head-of-support@example.com"}},
            }
        ),
        encoding="utf-8",
    )
    spec = HistorySpec(
        feature=FEATURE,
        weeks=WEEKS,
        volume=150,
        pass_rate=[(0, 0.93), (3.99, 0.93), (4, 0.45)],
        segments={"language": LANGUAGES, "channel": CHANNELS},
        seed=11,
    )
    outputs, labels, _ = write_history(spec, folder / "history")
    for command in (("ingest", outputs), ("labels", "import", labels)):
        result = aiqm(*command, "--config", config)
        assert result.code == 0, result.err
    for week in range(1, WEEKS + 1):
        at = spec.start + week * WEEK + timedelta(hours=6)
        result = aiqm("cycle", "--at", at.strftime("%Y-%m-%dT%H:%M:%SZ"), "--config", config)
        assert result.code == 0, result.err
    assert json.loads(result.out.splitlines()[-1])["mode"] == "review", result.out
    return config


def prometheus_files(folder: Path, daemon: int, alertmanager: int) -> Path:
    rules = (ROOT / "config" / "alerts.yml").read_text(encoding="utf-8")
    (folder / "alerts.yml").write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 1s", rules), encoding="utf-8")
    config = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager}"]}]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{daemon}"]}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def alertmanager_file(folder: Path, webhook_url: str) -> Path:
    text = (ROOT / "config" / "alertmanager.yml").read_text(encoding="utf-8")
    text = text.replace("http://alert-webhook:9095", webhook_url)
    text = re.sub(r"(?m)^(\s+group_(wait|interval):) \S+$", r"\1 1s", text)
    path = folder / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_prometheus_scrapes_the_daemon_the_dashboards_have_data_and_an_alert_reaches_the_webhook(
    aiqm: CliRunner,
    tmp_path: Path,
    processes: Processes,
    webhook: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    prometheus = binary("prometheus")
    alertmanager = binary("prometheus-alertmanager", "alertmanager")
    config = degrading_history(aiqm, tmp_path)

    daemon_port, prom_port, am_port, am_cluster = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    logs = [tmp_path / "aiqm.log", tmp_path / "prometheus.log", tmp_path / "alertmanager.log"]
    processes.start(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", str(daemon_port)],
        logs[0],
        cwd=tmp_path,
        env=env,
    )
    webhook_url, received = webhook
    (tmp_path / "am").mkdir()
    processes.start(
        [
            alertmanager,
            f"--config.file={alertmanager_file(tmp_path, webhook_url)}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            f"--cluster.advertise-address=127.0.0.1:{am_cluster}",
        ],
        logs[2],
    )
    (tmp_path / "tsdb").mkdir()
    processes.start(
        [
            prometheus,
            f"--config.file={prometheus_files(tmp_path, daemon_port, am_port)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        logs[1],
    )
    until = time.monotonic() + DEADLINE
    api = httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=5)

    def query(expr: str) -> list[dict[str, Any]]:
        answer = api.get("/api/v1/query", params={"query": expr}).json()
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scraped() -> bool:
        up = query('up{job="aiqm"}')
        store = query("aiqm_store_up")
        return bool(up and up[0]["value"][1] == "1" and store and store[0]["value"][1] == "1")

    wait_for("Prometheus to scrape the daemon", scraped, until, logs)

    # Every expression of every dashboard panel returns data.
    pending = {(name, title, concrete(expr, FEATURE)) for name, title, expr in dashboard_queries()}

    def all_have_data() -> bool:
        for item in list(pending):
            if query(item[2]):
                pending.discard(item)
        return not pending

    try:
        wait_for("every dashboard query to return data", all_have_data, until, logs)
    except pytest.fail.Exception:
        pytest.fail(f"panels without data: {sorted(pending)}")

    # The rules load and evaluate; the floor alert fires for the feature, with its owner.
    rules = api.get("/api/v1/rules").json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert set(loaded) >= {
        "AIQMQualityBelowFloor",
        "AIQMTriggerFiring",
        "AIQMFeatureStale",
        "AIQMCycleOverdue",
        "AIQMCycleFailed",
        "AIQMDaemonDown",
        "AIQMStoreUnreachable",
    }

    def floor_alert() -> dict[str, Any] | None:
        alerts = api.get("/api/v1/alerts").json()["data"]["alerts"]
        return next(
            (
                a
                for a in alerts
                if a["labels"]["alertname"] == "AIQMQualityBelowFloor" and a["state"] == "firing"
            ),
            None,
        )

    alert = wait_for("AIQMQualityBelowFloor to fire", floor_alert, until, logs)
    assert alert["labels"]["feature"] == FEATURE and alert["labels"]["owner"] == OWNER
    assert alert["labels"]["severity"] == "critical"
    assert re.search(r"under the floor of [\d.]+%", alert["annotations"]["description"])
    assert all(rule["health"] == "ok" for rule in loaded.values()), [
        (name, rule.get("lastError")) for name, rule in loaded.items() if rule["health"] != "ok"
    ]

    # Alertmanager routes it (critical: on call, then the owner's team) to the webhook.
    def delivered() -> set[str]:
        return {
            path
            for path, body in received
            for item in body["alerts"]
            if item["labels"]["alertname"] == "AIQMQualityBelowFloor" and item["status"] == "firing"
        }

    paths = wait_for("Alertmanager to deliver the alert", delivered, until, logs)
    assert "/aiqm/oncall" in paths
    wait_for("the owner's team to get it too", lambda: "/teams/support-quality" in delivered(), until, logs)
    api.close()
