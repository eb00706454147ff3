"""The issue's "done when", against a real `aiqm serve` in a subprocess on a free loopback port:
tokens by role (401, 403, stored), one bad record fails the batch with its index and field,
a cycle that fires `fallback` changes what the status endpoint and OFREP say, and a daemon
stopped over a scheduled time runs that cycle exactly once when it starts again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from monitor.demo.simulate import START, WEEK, HistorySpec, write_history
from monitor.store.engine import make_engine
from monitor.store.tables import cycles, labels, outputs

if TYPE_CHECKING:
    from conftest import CliRunner, Stores

FEATURE = "replies"
DROP = HistorySpec(
    FEATURE,
    weeks=10,
    volume=150,
    pass_rate=[(0, 0.93), (5.99, 0.93), (6, 0.45)],  # collapses in week 7
    segments={"language": {"en": 3, "de": 1}},
)


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def write_config(folder: Path, store_url: str, **feature: Any) -> Path:
    config = {"database_url": store_url, "features": {FEATURE: {"owner": "team@example.com", **feature}}}
    path = folder / "aiqm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}


@contextmanager
def daemon(config: Path, log: Path, *, ready: bool = True) -> Iterator[Daemon]:
    """`aiqm serve --port 0` until the block ends; always stopped (SIGTERM, then SIGKILL)."""
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env=environment(),
        )
    try:
        deadline = time.monotonic() + 60
        url = ""
        while not url:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the daemon did not start: " + log.read_text()
            for line in log.read_text().splitlines():
                if "serving on http://" in line:
                    url = line.split("serving on ", 1)[1].split()[0]
            time.sleep(0.05)
        while ready:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the daemon is not ready: " + log.read_text()
            time.sleep(0.05)
        yield Daemon(process, url, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def token(aiqm: CliRunner, config: Path, role: str) -> str:
    made = aiqm("token", "create", "--role", role, "--name", f"{role}-e2e", "--config", config)
    assert made.code == 0, made.err
    return made.out.strip()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_done_when_against_a_running_daemon(aiqm: CliRunner, store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, store_url)
    tokens = {role: token(aiqm, config, role) for role in ("ingest", "review", "read", "admin")}
    outputs_path, labels_path, _ = write_history(DROP, tmp_path / "history")
    history = [json.loads(line) for line in outputs_path.read_text().splitlines()]
    verdicts = [json.loads(line) for line in labels_path.read_text().splitlines()]
    engine = make_engine(store_url)

    def stored(table: Any) -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    try:
        with (
            daemon(config, tmp_path / "daemon.log") as running,
            httpx.Client(base_url=running.url, timeout=60) as http,
        ):
            first = history[:3]
            assert http.post("/v1/outputs", json=first).status_code == 401
            assert http.post("/v1/outputs", json=first, headers=bearer(tokens["read"])).status_code == 403
            bad = [*first, {**history[3], "ts": "last tuesday"}, *history[4:6]]
            refused = http.post("/v1/outputs", json=bad, headers=bearer(tokens["ingest"]))
            assert refused.status_code == 422
            assert refused.json()["errors"] == [
                {"index": 3, "field": "ts", "message": refused.json()["errors"][0]["message"]}
            ]
            assert stored(outputs) == 0
            taken = http.post("/v1/outputs", json=history, headers=bearer(tokens["ingest"]))
            assert taken.status_code == 200 and taken.json()["stored"] == len(history)
            assert http.post("/v1/labels", json=verdicts, headers=bearer(tokens["review"])).json()[
                "stored"
            ] == len(verdicts)
            assert stored(outputs) == len(history) and stored(labels) == len(verdicts)
            status = f"/v1/features/{FEATURE}/status"
            flag = f"/ofrep/v1/evaluate/flags/{FEATURE}"
            assert http.get(status, headers=bearer(tokens["read"])).json()["mode"] == "normal"
            for week in range(7):  # the weekly cycles, the last one after the collapse
                at = START + (week + 1) * WEEK + timedelta(hours=6)
                ran = aiqm("cycle", "--at", at.isoformat(), "--feature", FEATURE, "--config", config)
                assert ran.code == 0, ran.err
            time.sleep(1.0)  # another process's change shows within server.read_cache_seconds
            after = http.get(status, headers=bearer(tokens["read"])).json()
            assert after["mode"] == "review"
            assert ("fallback", "all", "firing") in {
                (t["trigger"], t["scope"], t["state"]) for t in after["triggers"]
            }
            assert after["reason"].startswith("fallback:")
            evaluated = http.post(flag, json={"context": {}}, headers=bearer(tokens["read"])).json()
            assert (evaluated["key"], evaluated["value"], evaluated["variant"]) == (
                FEATURE,
                "review",
                "review",
            )
            assert evaluated["reason"] == "TARGETING_MATCH"
            missing = http.post("/ofrep/v1/evaluate/flags/nope", json={}, headers=bearer(tokens["read"]))
            assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
            off = http.post(
                f"/v1/features/{FEATURE}/override",
                json={"mode": "off", "reason": "e2e"},
                headers=bearer(tokens["admin"]),
            )
            assert off.status_code == 200
            assert http.post(flag, headers=bearer(tokens["read"])).json()["value"] == "off"
        assert running.process.returncode == 0, running.text()
        text = running.text()
        assert "stopped" in text and "Traceback" not in text
        for secret in tokens.values():
            assert secret not in text
    finally:
        engine.dispose()


def test_a_busy_port_is_a_clear_error(aiqm_proc: CliRunner, tmp_path: Path, stores: Stores) -> None:
    import socket

    config = write_config(tmp_path, stores.sqlite())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = aiqm_proc("serve", "--config", config, "--port", str(port), timeout=60)
    assert done.code == 1 and "cannot listen on 127.0.0.1" in done.err and "Traceback" not in done.err


@pytest.mark.slow
def test_a_cycle_missed_while_stopped_runs_once_at_the_next_start(tmp_path: Path, stores: Stores) -> None:
    store_url = stores.sqlite()
    config = write_config(tmp_path, store_url, schedule="* * * * *")
    with daemon(config, tmp_path / "first.log") as first:
        pass  # it stored its job with the next minute as the next run, then stopped
    stopped = datetime.now(UTC)
    assert first.process.returncode == 0, first.text()
    missed = stopped.replace(second=0, microsecond=0) + timedelta(minutes=1)
    time.sleep(max(0.0, (missed - datetime.now(UTC)).total_seconds()) + 1.5)  # down over `missed`
    engine = make_engine(store_url)

    def ran_at() -> list[datetime]:
        with engine.connect() as conn:
            rows = conn.execute(select(cycles.c.at, cycles.c.status).where(cycles.c.feature == FEATURE))
            return [at for at, status in rows if status == "done"]

    try:
        assert missed not in ran_at()
        with daemon(config, tmp_path / "second.log") as second:
            deadline = time.monotonic() + 45
            while missed not in ran_at():
                assert time.monotonic() < deadline, second.text()
                time.sleep(0.1)
        log = second.text()
        assert log.count(f"cycle {FEATURE} at {missed.isoformat()} done") == 1, log
        assert f"cycle {FEATURE} at {missed.isoformat()}" not in first.text()
        assert ran_at().count(missed) == 1
        assert second.process.returncode == 0
    finally:
        engine.dispose()
