"""`aiqm status`: each feature's mode (and override), triggers, last pass rate with its interval,
baseline, proposals and counts, as text and as JSON; a warning for features nobody owns and for
notifications that wait for a failing receiver."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine

from monitor.config import load_settings
from monitor.cycle.backtest import RecordedReviewers, SimulatedClock
from monitor.cycle.runner import CycleRunner
from monitor.demo.simulate import START, WEEK, HistorySpec, write_history
from monitor.intake.ingest import OUTPUTS, import_file
from monitor.store import feature_queries as fq

if TYPE_CHECKING:
    from conftest import CliRunner

BROKEN = HistorySpec(
    "drafts",
    weeks=8,
    volume=120,
    pass_rate=[(0, 0.93), (4.99, 0.93), (5, 0.45)],
    segments={"language": {"en": 3, "de": 1}},
    config_versions={0: "prompt-v1", 5: "prompt-v2"},
)
ORPHAN = HistorySpec("orphan", weeks=1, volume=20, pass_rate=0.9, seed=3)
CONFIG = """
features:
  drafts:
    owner: drafts-team@example.com
    decision_owner: head-of-drafts@example.com
  planned:
    owner: planning@example.com
"""


def cycle_time(week: int) -> datetime:
    return START + (week + 1) * WEEK + timedelta(hours=6)


@pytest.fixture
def store(engine: Engine, store_url: str, tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "aiqm.yaml"
    config.write_text(CONFIG)
    settings = load_settings(config)
    outputs_path, labels_path, _ = write_history(BROKEN, tmp_path / "drafts")
    import_file(engine, str(outputs_path), OUTPUTS, lambda: START)
    orphan_outputs, _, _ = write_history(ORPHAN, tmp_path / "orphan")
    import_file(engine, str(orphan_outputs), OUTPUTS, lambda: START)
    clock = SimulatedClock(cycle_time(0))
    runner = CycleRunner(engine, settings, clock, [RecordedReviewers.from_file(str(labels_path))])
    for week in range(8):
        clock.now = cycle_time(week)
        runner.run("drafts", cycle_time(week))
    return {"config": config, "env": {"AIQM_DATABASE_URL": store_url}, "runner": runner, "clock": clock}


def test_status_json_has_mode_triggers_last_cycle_baseline_and_proposals(
    store: dict[str, Any], aiqm: CliRunner
) -> None:
    done = aiqm("status", "--json", "--config", store["config"], env=store["env"])
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert set(report["features"]) == {"drafts", "orphan", "planned"}
    drafts = report["features"]["drafts"]
    assert drafts["mode"] == "review"
    assert drafts["mode_reason"].startswith("fallback:")
    assert drafts["mode_since"] is not None and drafts["override"] is None
    assert drafts["owner"] == "drafts-team@example.com"
    assert drafts["decision_owner"] == "head-of-drafts@example.com"
    firing = {(t["trigger"], t["scope"]) for t in drafts["triggers"] if t["state"] == "firing"}
    assert {("retrain", "all"), ("fallback", "all")} <= firing
    for trigger in drafts["triggers"]:
        assert set(trigger) == {"trigger", "scope", "state", "since", "reason", "evidence"}
        assert trigger["state"] in {"pending", "firing", "resolved"}
        assert trigger["reason"]
    assert drafts["triggers"][0]["state"] == "firing"  # the loudest first
    last = drafts["last_cycle"]
    assert last["at"] == cycle_time(7).isoformat()
    assert last["pass_rate_low"] <= last["pass_rate"] <= last["pass_rate_high"]
    assert last["pass_rate"] < 0.7 and last["confidence"] == 0.95
    assert last["labelled"] > 0 and last["sampled"] >= last["labelled"] and last["outputs"] > 0
    baseline = drafts["baseline"]
    assert baseline["version"] == 1 and baseline["kind"] == "auto" and baseline["status"] == "active"
    assert baseline["pass_rate"] > 0.85 and baseline["window_end"] == cycle_time(3).isoformat()
    assert [p["status"] for p in drafts["proposals"]] == ["proposed"]
    assert "prompt-v1 -> prompt-v2" in drafts["proposals"][0]["reason"]
    assert drafts["outputs"] > 800 and drafts["labels"]["human"] > 0 and drafts["labels"]["judge"] == 0
    assert drafts["cycles"] == {"done": 8, "running": 0, "restatements": 0}
    orphan = report["features"]["orphan"]
    assert orphan["mode"] == "normal" and orphan["last_cycle"] is None and orphan["baseline"] is None
    assert orphan["triggers"] == [] and orphan["outputs"] > 0
    planned = report["features"]["planned"]
    assert planned["outputs"] == 0 and planned["mode_reason"] == "no outputs yet"
    owners = [w for w in report["warnings"] if "no owner" in w]
    assert len(owners) == 1 and "orphan has no owner" in owners[0]
    fallbacks = [w for w in report["warnings"] if "without a fallback behaviour" in w]
    assert [w.split()[0] for w in fallbacks] == ["drafts", "orphan"]  # running ones only, not `planned`


def test_status_text_says_the_same(store: dict[str, Any], aiqm: CliRunner) -> None:
    done = aiqm("status", "--config", store["config"], env=store["env"])
    assert done.code == 0, done.err
    text = done.out
    drafts = text[text.index("drafts") : text.index("orphan")]
    assert "mode=REVIEW" in drafts and "owner=drafts-team@example.com" in drafts
    assert "why: fallback:" in drafts
    assert "last cycle 2026-03-02 06:00: pass rate" in drafts and "(95% interval)" in drafts
    assert "baseline v1 (auto)" in drafts
    assert "proposed baseline v2" in drafts and "aiqm baseline accept --feature drafts" in drafts
    assert "firing   retrain  all" in drafts and "firing   fallback all" in drafts
    assert "cycles 8" in drafts
    assert "warning: orphan has no owner" in text
    assert "last cycle: none yet" in text[text.index("orphan") :]
    brief = aiqm("brief", "--feature", "drafts", "--config", store["config"], env=store["env"])
    assert brief.code == 0, brief.err
    assert "Current mode:     review" in brief.out and "Baseline:         v1 " in brief.out


def test_an_override_shows_as_the_mode(engine: Engine, store: dict[str, Any], aiqm: CliRunner) -> None:
    with engine.begin() as conn:
        fq.add_override(
            conn,
            "drafts",
            "off",
            "switched off during the incident",
            datetime.now().astimezone(),
            until=datetime.now().astimezone() + timedelta(days=1),
            set_by="oncall",
        )
    report = json.loads(aiqm("status", "--json", "--config", store["config"], env=store["env"]).out)
    drafts = report["features"]["drafts"]
    assert drafts["mode"] == "off"
    assert drafts["mode_reason"] == "manual override: switched off during the incident"
    assert drafts["override"]["set_by"] == "oncall" and drafts["override"]["until"] is not None
    text = aiqm("status", "--config", store["config"], env=store["env"]).out
    assert "mode=OFF" in text and "override: off until" in text


def test_status_of_an_empty_store(store_url: str, aiqm: CliRunner) -> None:
    done = aiqm("status", env={"AIQM_DATABASE_URL": store_url})
    assert done.code == 0 and "no features yet" in done.out
    report = json.loads(aiqm("status", "--json", env={"AIQM_DATABASE_URL": store_url}).out)
    assert report["features"] == {} and report["warnings"] == []


def test_an_override_that_ended_after_the_last_cycle_no_longer_sets_the_mode(
    engine: Engine, store: dict[str, Any], aiqm: CliRunner
) -> None:
    at = cycle_time(8)
    with engine.begin() as conn:
        fq.add_override(
            conn, "drafts", "off", "maintenance", at - timedelta(days=1), until=at + timedelta(days=1)
        )
    store["clock"].now = at
    assert store["runner"].run("drafts", at).mode == "off"  # the cycle stored the override's mode
    report = json.loads(aiqm("status", "--json", "--config", store["config"], env=store["env"]).out)
    drafts = report["features"]["drafts"]
    assert drafts["override"] is None  # it ended a day after that cycle
    assert drafts["mode"] == "review" and drafts["mode_reason"].startswith("fallback:")


def test_deliveries_waiting_for_a_later_try_are_a_warning(
    engine: Engine, store: dict[str, Any], aiqm: CliRunner
) -> None:
    from monitor.store.tables import notification_deliveries

    def warnings() -> list[str]:
        report = json.loads(aiqm("status", "--json", "--config", store["config"], env=store["env"]).out)
        return [w for w in report["warnings"] if "not delivered" in w]

    assert warnings() == []
    now = datetime.now().astimezone()
    with engine.begin() as conn:
        conn.execute(
            notification_deliveries.insert(),
            [
                {
                    "event_pk": pk,
                    "sink": "ops",
                    "feature": "drafts",
                    "status": status,
                    "attempts": 5,
                    "created_at": now,
                    "next_attempt_at": now,
                }
                for pk, status in ((1, "waiting"), (2, "waiting"), (3, "failed"))
            ],
        )
    assert warnings() == [
        "drafts: 2 trigger notification(s) not delivered yet, waiting for a later try; the receiver fails "
        "(the daemon's log says why)"
    ]
    text = aiqm("status", "--config", store["config"], env=store["env"]).out
    assert "warning: drafts: 2 trigger notification(s) not delivered yet" in text
