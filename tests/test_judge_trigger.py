"""The `judge` trigger: a judge shown to disagree with the humans fires, a recovered one resolves;
the pooled agreement is Cohen's kappa of the paired verdicts; it shows in backtests and status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from monitor.config import FeatureSettings, JudgeAgreementSettings
from monitor.decide.triggers import CycleFacts, TriggerState, decide, judge_conditions
from monitor.demo.simulate import HistorySpec, write_history
from monitor.judges import JudgePairs, judge_pairs
from monitor.stats import cohens_kappa

if TYPE_CHECKING:
    from conftest import CliRunner

T0 = datetime(2026, 1, 5, 6, tzinfo=UTC)
GOOD = JudgePairs(pass_pass=40, pass_fail=2, fail_pass=2, fail_fail=6, judged=50)  # kappa 0.70
BAD = JudgePairs(pass_pass=35, pass_fail=5, fail_pass=8, fail_fail=2, judged=50)  # kappa 0.08


def facts(week: int, judges: dict[str, JudgePairs]) -> CycleFacts:
    return CycleFacts(
        at=T0 + timedelta(weeks=week),
        outputs=100,
        human_labels_received=50,
        labels_received=100,
        quality={},
        judges=judges,
    )


def test_pairs_count_human_against_judge_verdicts() -> None:
    items = [
        {"human:ann": "pass", "judge:a": "pass", "judge:b": "fail"},
        {"human:ann": "fail", "human:bob": "pass", "judge:a": "pass"},  # the first human by name counts
        {"human:ann": "unsure", "judge:a": "fail"},  # no human verdict: judged, not paired
        {"human:ann": "pass", "judge:a": "unsure"},  # no judge verdict
        {"human:ann": "fail"},
    ]
    pairs = judge_pairs(items)
    assert pairs["a"] == JudgePairs(pass_pass=1, pass_fail=0, fail_pass=1, fail_fail=0, judged=4)
    assert pairs["b"] == JudgePairs(pass_pass=0, pass_fail=1, fail_pass=0, fail_fail=0, judged=1)


def test_the_summary_is_cohens_kappa_and_storable() -> None:
    summary = BAD.summary(0.95)
    humans = ["pass"] * 40 + ["fail"] * 10
    judge = ["pass"] * 35 + ["fail"] * 5 + ["pass"] * 8 + ["fail"] * 2
    expected = cohens_kappa(humans, judge, 0.95)
    assert summary["kappa"] == pytest.approx(expected.kappa)
    assert (summary["low"], summary["high"]) == pytest.approx((expected.low, expected.high))
    assert summary["agreement"] == pytest.approx(0.74) and summary["n"] == 50
    everyone_passes = JudgePairs(pass_pass=30, judged=30).to_json(0.95)
    assert everyone_passes["kappa"] is None and everyone_passes["agreement"] == 1.0  # no NaN in JSON
    json.dumps(everyone_passes, allow_nan=False)
    assert JudgePairs.from_json(BAD.to_json(0.95)) == BAD


def test_a_judge_shown_below_the_threshold_fires_and_a_good_one_does_not() -> None:
    settings = FeatureSettings()
    conditions = judge_conditions(settings, [facts(0, {"good": GOOD, "bad": BAD})])
    assert conditions["good"].level == "ok"
    assert conditions["bad"].level == "firing"
    assert conditions["bad"].evidence["high"] < 0.4
    assert "Cohen's kappa 0.08" in conditions["bad"].reason


def test_few_paired_items_can_only_make_it_pending() -> None:
    few = JudgePairs(pass_pass=6, pass_fail=3, fail_pass=3, fail_fail=0, judged=50)  # kappa < 0, n = 12
    condition = judge_conditions(FeatureSettings(), [facts(0, {"j": few})])["j"]
    assert condition.level == "pending"
    assert "fires from 20 items" in condition.reason
    tiny = JudgePairs(pass_pass=2, pass_fail=2, judged=50)
    assert judge_conditions(FeatureSettings(), [facts(0, {"j": tiny})])["j"].level == "ok"


def test_no_human_labels_leave_it_as_it_was() -> None:
    settings = FeatureSettings()
    firing = TriggerState("judge", "judge:j", "firing", T0, "was bad")
    unlabelled = JudgePairs(judged=50)
    decision = decide(settings, None, [facts(0, {"j": unlabelled})], {("judge", "judge:j"): firing}, None, T0)
    assert decision.states[("judge", "judge:j")].state == "firing"


def test_it_fires_as_agreement_falls_and_resolves_once_it_recovers() -> None:
    settings = FeatureSettings(judge_min_agreement=JudgeAgreementSettings(kappa=0.4, min_items=20, cycles=4))
    sequence = [GOOD] * 3 + [BAD] * 5 + [GOOD] * 4
    history: list[CycleFacts] = []
    previous: dict[tuple[str, str], TriggerState] = {}
    states = []
    events = []
    for week, pairs in enumerate(sequence):
        history.append(facts(week, {"grader": pairs}))
        decision = decide(settings, None, history, previous, None, history[-1].at)
        previous = decision.states
        states.append(previous[("judge", "judge:grader")].state)
        events += [(week, t.to_state, t.owner) for t in decision.transitions if t.trigger == "judge"]
    assert states[:4] == ["ok"] * 4
    assert "firing" in states[4:8] and states[7] == "firing"
    assert states[-1] == "ok" and "resolved" in states[8:]
    assert [e[1] for e in events] == ["pending", "firing", "resolved", "ok"]
    assert all(owner == settings.owner for *_, owner in events)


def test_a_removed_judge_resolves() -> None:
    settings = FeatureSettings()
    history = [facts(0, {"old": BAD})] + [facts(w, {}) for w in range(1, 5)]
    firing = TriggerState("judge", "judge:old", "firing", T0, "bad")
    decision = decide(settings, None, history, {("judge", "judge:old"): firing}, None, history[-1].at)
    assert decision.states[("judge", "judge:old")].state == "resolved"


def test_the_judge_alert_shows_in_backtests_and_status(tmp_path: Path, aiqm: CliRunner) -> None:
    # Outputs' lengths have nothing to do with their quality: a length judge's verdicts are noise.
    spec = HistorySpec("replies", weeks=3, volume=150, pass_rate=0.85, seed=5)
    outputs, labels, _ = write_history(spec, tmp_path / "history")
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        "features:\n  replies:\n    judges: [{kind: length, name: short, max_chars: 130}]\n", encoding="utf-8"
    )
    result = json.loads(
        aiqm("backtest", "--outputs", outputs, "--labels", labels, "--config", config, "--json").out
    )
    cycles = result["features"]["replies"]["cycles"]
    alerts = [a for c in cycles for a in c["alerts"] if a["trigger"] == "judge"]
    assert alerts and alerts[-1]["scope"] == "judge:short" and alerts[-1]["state"] == "firing"
    assert "Cohen's kappa" in alerts[-1]["reason"]


def test_aiqm_status_lists_the_judge_trigger(tmp_path: Path, aiqm: CliRunner, store_url: str) -> None:
    spec = HistorySpec("replies", weeks=2, volume=120, pass_rate=0.85, seed=6)
    outputs, labels, _ = write_history(spec, tmp_path / "history")
    config = tmp_path / "aiqm.yaml"
    config.write_text(
        "features:\n  replies:\n    judges: [{kind: length, name: short, max_chars: 130}]\n", encoding="utf-8"
    )
    env = {"AIQM_DATABASE_URL": store_url}
    assert aiqm("ingest", outputs, env=env).code == 0
    first = aiqm("cycle", "--at", "2026-01-19T06:00:00Z", "--config", config, env=env)
    assert first.code == 0, first.err
    # Humans review the sample during the week: their labels restate the cycle's agreement.
    assert aiqm("labels", "import", labels, "--skip-bad", env=env).code == 0
    second = aiqm("cycle", "--at", "2026-01-26T06:00:00Z", "--config", config, env=env)
    assert second.code == 0, second.err
    status = json.loads(aiqm("status", "--json", "--config", config, env=env).out)
    judge = [t for t in status["features"]["replies"]["triggers"] if t["trigger"] == "judge"]
    assert judge and judge[0]["scope"] == "judge:short" and judge[0]["state"] == "firing"
