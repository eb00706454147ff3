"""`aiqm demo`: a store filled by replaying a simulated history through the cycle, in seconds,
with the data directory, the features' modes and triggers, and commands that work printed;
then the daemon serving it on loopback, with tokens to try it, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from monitor.config import load_settings
from monitor.demo.run import history_end, run_demo
from monitor.reporting.status import collect_status
from monitor.store.engine import make_engine

if TYPE_CHECKING:
    from conftest import CliRunner


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The default demo (16 weeks, three features), set up once for the module."""
    folder = tmp_path_factory.mktemp("demo") / "data"
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = run_demo(weeks=16, data_dir=folder, serve=False)
    return {"code": code, "out": out.getvalue(), "seconds": time.perf_counter() - started, "dir": folder}


def commands(text: str) -> dict[str, list[str]]:
    """The printed commands to try next, by subcommand (status, backtest, drift, ...)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("  aiqm "):
            words = shlex.split(line)
            found.setdefault(" ".join(words[1:3]) if words[1] == "baseline" else words[1], words[1:])
    return found


def test_demo_sets_up_in_seconds_and_says_where(demo: dict[str, Any]) -> None:
    assert demo["code"] == 0
    # seconds on a quiet machine; the bound leaves room for 2 shared cores (the simulated LLM
    # judge alone answers about 1,500 real HTTP calls)
    assert demo["seconds"] < 120
    text = demo["out"]
    assert text.splitlines()[0].startswith("quality page    http://127.0.0.1:8000/quality ")
    folder = demo["dir"].resolve()
    assert f"data directory  {folder}" in text
    assert f"configuration   {folder / 'aiqm.yaml'}" in text
    for feature in ("support-reply", "ticket-triage", "summarizer"):
        assert f"{feature}  mode=" in text
    assert "Try next:" in text
    assert set(commands(text)) >= {"status", "backtest", "drift", "baseline list", "baseline accept", "cycle"}
    assert "The daemon serves" not in text  # --no-serve


def test_demo_store_holds_cycles_triggers_and_modes(demo: dict[str, Any]) -> None:
    settings = load_settings(demo["dir"] / "aiqm.yaml")
    engine = make_engine(settings.resolved_database_url)
    try:
        report = collect_status(engine, settings)
    finally:
        engine.dispose()
    features = report["features"]
    assert set(features) == {"support-reply", "ticket-triage", "summarizer"}
    assert report["warnings"] == []  # every demo feature has an owner
    for item in features.values():
        assert item["cycles"]["done"] == 16 and item["cycles"]["running"] == 0
        assert item["baseline"] is not None and item["last_cycle"]["pass_rate"] is not None
        last_at = datetime.fromisoformat(item["last_cycle"]["at"])
        assert datetime.now(UTC) - timedelta(days=7) < last_at <= datetime.now(UTC)  # the history ends now

    def firing(name: str) -> set[str]:
        return {
            t["trigger"] for t in features[name]["triggers"] if t["state"] == "firing" and t["scope"] == "all"
        }

    assert features["support-reply"]["mode"] == "normal" and not firing("support-reply")
    assert "retrain" in firing("ticket-triage")
    assert features["summarizer"]["mode"] == "review"
    assert {"retrain", "fallback"} <= firing("summarizer")
    assert len(features["summarizer"]["proposals"]) == 1  # after its prompt change
    for item in features.values():
        assert item["labels"]["judge"] > 0  # the rule judge and the simulated LLM judge labelled


def test_demo_has_judges_agreement_cost_and_a_half_reviewed_week(demo: dict[str, Any]) -> None:
    """The LLM judge (the simulated model on loopback) was called and paid for, agrees with the
    reviewers, backs the latest pass rate, and half of this week's sample waits for review."""
    from monitor.store import cycle_queries as q
    from monitor.store import review_queries as rq
    from monitor.store.quality_queries import judge_spend

    settings = load_settings(demo["dir"] / "aiqm.yaml")
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            for feature in ("support-reply", "ticket-triage", "summarizer"):
                latest = q.cycle_rows(conn, feature)[-1]
                spend = [s for s in judge_spend(conn, feature, 4) if s.judge == "grader"]
                assert len(spend) == 4 and all(
                    s.calls > 0 and s.cost_usd > 0 and s.errors == 0 for s in spend
                )
                judges = latest["result"]["judges"]
                assert {"grader"} <= set(judges) and judges["grader"]["kappa"] > 0.5
                assert latest["result"]["quality"]["all"]["method"] == "ppi"  # the judge-backed estimate
                (progress,) = rq.progress(conn, feature, [latest["at"]])
                assert 0 < progress.reviewed < progress.drawn
                outputs = rq.queue(conn, feature, latest["at"])
                assert outputs and all("lorem" not in str(item.output) for item in outputs)
    finally:
        engine.dispose()


def test_the_printed_commands_work_from_another_directory(
    demo: dict[str, Any], aiqm: CliRunner, tmp_path: Path
) -> None:
    found = commands(demo["out"])
    status = aiqm(*found["status"])
    assert status.code == 0 and "summarizer  mode=REVIEW" in status.out
    drift = aiqm(*found["drift"], "--json")
    assert drift.code == 0
    assert any(entry["drifted"] for entry in json.loads(drift.out)["signals"])
    backtest = aiqm(*found["backtest"], "--json")
    assert backtest.code == 0
    cycles = json.loads(backtest.out)["features"]["summarizer"]["cycles"]
    assert len(cycles) == 16 and cycles[-1]["mode"] == "review"
    listed = aiqm(*found["baseline list"])
    assert listed.code == 0 and "proposed" in listed.out


def test_demo_from_any_directory_in_a_subprocess(tmp_path: Path) -> None:
    """`python -m monitor demo` with a relative --data-dir, then status from elsewhere."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    made = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--weeks", "6", "--data-dir", "rel/demo", "--no-serve"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert f"data directory  {work / 'rel' / 'demo'}" in made.stdout
    status = subprocess.run(
        [sys.executable, "-m", "monitor", *commands(made.stdout)["status"]],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "support-reply  mode=NORMAL" in status.stdout


def test_demo_refuses_a_used_directory_and_odd_weeks(aiqm: CliRunner, tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused = aiqm("demo", "--data-dir", used, "--no-serve")
    assert refused.code == 2 and "not empty" in refused.err and "Traceback" not in refused.err
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    assert aiqm("demo", "--weeks", "2", "--no-serve").code == 2


def test_the_history_ends_at_the_last_cycle_that_has_run() -> None:
    monday_noon = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert history_end(monday_noon) == datetime(2026, 3, 2, tzinfo=UTC)
    monday_early = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # before this Monday's 06:00 cycle
    assert history_end(monday_early) == datetime(2026, 2, 23, tzinfo=UTC)
    sunday = datetime(2026, 3, 8, 23, 0, tzinfo=UTC)
    assert history_end(sunday) == datetime(2026, 3, 2, tzinfo=UTC)


def test_demo_serves_the_store_until_sigterm(tmp_path: Path) -> None:
    """`aiqm demo --port 0`: the printed URL and read token give the modes; SIGTERM stops it cleanly."""
    import re
    import signal

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    log = tmp_path / "demo.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "demo", "--weeks", "6", "--data-dir", "d", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while "curl -X DELETE" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        url = re.search(r"serves the demo store on (http://127\.0\.0\.1:\d+)", text)
        read = re.search(r"read token +(\S+)", text)
        assert url is not None and read is not None, text
        assert f"{url[1]}/review" in text
        headers = {"Authorization": f"Bearer {read[1]}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"{url[1]}/v1/features/summarizer/status", headers=headers, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["mode"] in {"normal", "review"}
        assert httpx.get(f"{url[1]}/readyz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()
