"""Three `aiqm serve` replicas on one PostgreSQL: all take ingest and serve the API, exactly one
runs the scheduled cycles; SIGKILL the leader and another takes over within a minute, and every
scheduled minute's cycle ran exactly once (one row per scheduled time, no gap, no output sampled
twice, one "done" line across all the replicas' logs), also after PostgreSQL drops the new
leader's session under it (a network cut)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from monitor.daemon.leader import LEADER_LOCK
from monitor.store.engine import make_engine
from monitor.store.tables import cycles, samples

if TYPE_CHECKING:
    from conftest import CliRunner, Stores

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FEATURE = "replies"


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def ready(self) -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 200 else None


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def replica(name: str, config: Path, folder: Path) -> Iterator[Replica]:
    """`aiqm serve --port 0`, until the block ends; always stopped (SIGTERM, then SIGKILL)."""
    log = folder / f"{name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=_environment(),
        )
    try:
        deadline = time.monotonic() + 60
        url = ""
        while not url:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{name} did not start: " + log.read_text()
            for line in log.read_text().splitlines():
                if "serving on http://" in line:
                    url = line.split("serving on ", 1)[1].split()[0]
            time.sleep(0.05)
        yield Replica(name, process, url, log)
    finally:
        _kill(process)


def wait_for(what: str, check: Any, seconds: float, logs: list[Replica]) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {seconds:.0f} s\n" + "\n".join(r.text() for r in logs))
        time.sleep(0.1)


def test_three_replicas_one_leader_failover_within_a_minute_every_cycle_once(
    aiqm: CliRunner, stores: Stores, tmp_path: Path
) -> None:
    url = stores.create("postgresql")
    config = tmp_path / "aiqm.yaml"
    feature = {"owner": "team@example.com", "schedule": "* * * * *", "sample_size": 5}
    config.write_text(yaml.safe_dump({"database_url": url, "features": {FEATURE: feature}}), encoding="utf-8")
    made = aiqm("token", "create", "--role", "ingest", "--name", "replicas", "--config", config)
    assert made.code == 0, made.err
    headers = {"Authorization": f"Bearer {made.out.strip()}"}
    engine = make_engine(url)

    def done_cycles() -> list[tuple[datetime, str]]:
        with engine.connect() as conn:
            rows = conn.execute(select(cycles.c.at, cycles.c.status).where(cycles.c.feature == FEATURE))
            return sorted((at, status) for at, status in rows)

    try:
        with ExitStack() as stack:
            replicas = [stack.enter_context(replica(f"r{i}", config, tmp_path)) for i in range(3)]
            states = wait_for(
                "three ready replicas",
                lambda: (s := [r.ready() for r in replicas]) and all(s) and s,
                60,
                replicas,
            )
            assert sum(bool(s["leader"]) for s in states) == 1, states
            assert sorted(s["scheduler"] for s in states) == ["running", "standby", "standby"]
            now = datetime.now(UTC)
            for i, each in enumerate(replicas):  # every replica takes ingest
                batch = [
                    {
                        "id": f"{each.name}-{n}",
                        "feature": FEATURE,
                        "ts": (now - timedelta(minutes=n + 1)).isoformat(),
                        "output": f"answer {i} {n}",
                    }
                    for n in range(40)
                ]
                answer = httpx.post(f"{each.url}/v1/outputs", json=batch, headers=headers, timeout=30)
                assert answer.status_code == 200 and answer.json()["stored"] == 40, answer.text
            leader = next(r for r, s in zip(replicas, states, strict=True) if s["leader"])
            first = wait_for(
                "a first scheduled cycle",
                lambda: [at for at, status in done_cycles() if status == "done"],
                75,
                replicas,
            )[0]
            leader.process.send_signal(signal.SIGKILL)
            leader.process.wait(timeout=10)
            killed = time.monotonic()
            others = [r for r in replicas if r is not leader]
            successor = wait_for(
                "a new leader",
                lambda: next((r for r in others if (r.ready() or {}).get("leader")), None),
                60,
                replicas,
            )
            took_over = time.monotonic() - killed
            after = datetime.now(UTC)
            after_minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
            wait_for(
                "a cycle run by the new leader",
                lambda: (after_minute, "done") in done_cycles(),
                100,
                replicas,
            )
            assert sum(bool((r.ready() or {}).get("leader")) for r in others) == 1
            # A network cut: PostgreSQL drops the leader's session, and with it the lock, while
            # the leader lives on. It notices (at its next check, or before its next cycle at the
            # latest) and steps down; one replica leads again and the next minute runs once.
            with engine.connect() as conn:
                holders = list(
                    conn.exec_driver_sql(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                        f" AND objid = {LEADER_LOCK} AND granted"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ).scalars()
                )
                assert len(holders) == 1, holders
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({holders[0]})")
            wait_for(
                "the cut leader stepping down",
                lambda: "stops leading the scheduler: its lock connection was lost" in successor.text(),
                30,
                replicas,
            )
            wait_for(
                "one leader after the cut",
                lambda: sum(bool((r.ready() or {}).get("leader")) for r in others) == 1,
                30,
                replicas,
            )
            after_cut = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
            wait_for("a cycle after the cut", lambda: (after_cut, "done") in done_cycles(), 100, replicas)
        ran = done_cycles()
        assert all(status == "done" for _, status in ran), ran
        times = [at for at, _ in ran]
        assert len(times) == len(set(times)), times  # each scheduled time once
        expected = [
            first + timedelta(minutes=k) for k in range(int((times[-1] - first).total_seconds() // 60) + 1)
        ]
        assert [t for t in times if t >= first] == expected, (times, expected)  # no minute missed
        logged = Counter(
            line.split(f"cycle {FEATURE} at ", 1)[1].split(" done")[0]
            for r in replicas
            for line in r.text().splitlines()
            if f"cycle {FEATURE} at " in line and " done:" in line
        )
        assert set(logged.values()) == {1}, logged
        assert {datetime.fromisoformat(at) for at in logged} == set(times)
        assert f"cycle {FEATURE} at {after_minute.isoformat()} done" in successor.text()
        with engine.connect() as conn:
            pairs = conn.execute(
                select(samples.c.output_id, func.count()).group_by(samples.c.feature, samples.c.output_id)
            ).all()
        assert pairs and all(count == 1 for _, count in pairs)  # no output sampled twice
        assert took_over < 60
        print(f"leader {leader.name} killed; {successor.name} took over in {took_over:.1f} s; cycles {times}")
    finally:
        engine.dispose()
        stores.drop(url)
