"""The trigger rules as a pure state machine: enter and exit on different conditions, cool
down, never flap, let a manual override win, and record every transition with its numbers
and the person it is for."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import FeatureSettings
from monitor.decide.quality import ScopeQuality
from monitor.decide.retrain import _scope_baseline, fallback_condition
from monitor.decide.triggers import (
    Baseline,
    Condition,
    CycleFacts,
    Transition,
    TriggerState,
    decide,
    step,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
FIRE = Condition("firing", exit_ok=False, reason="bad", evidence={"statistic": 9.0})
PEND = Condition("pending", exit_ok=False, reason="building", evidence={"statistic": 4.0})
QUIET = Condition("ok", exit_ok=False, reason="not bad, not clearly good", evidence={"statistic": 2.0})
CLEAR = Condition("ok", exit_ok=True, reason="good again", evidence={"statistic": 0.0})


def run(conditions: Sequence[Condition], cooldown: int = 2) -> list[TriggerState]:
    states: list[TriggerState] = []
    previous: TriggerState | None = None
    for i, condition in enumerate(conditions):
        previous = step(previous, "retrain", "all", condition, T0 + i * WEEK, cooldown)
        states.append(previous)
    return states


def test_enters_firing_only_on_the_firing_condition() -> None:
    assert [s.state for s in run([QUIET, PEND, PEND, FIRE])] == ["ok", "pending", "pending", "firing"]


def test_hysteresis_firing_holds_until_the_exit_condition() -> None:
    """Once firing, a cycle that is merely not bad (level ok, exit not met) does not resolve it."""
    states = run([FIRE, QUIET, PEND, QUIET, CLEAR, QUIET])
    assert [s.state for s in states] == ["firing", "firing", "firing", "firing", "resolved", "ok"]
    assert states[3].since == T0  # `since` is when the state was entered
    assert states[4].since == T0 + 4 * WEEK


def test_cooldown_after_resolving_holds_a_new_alarm_at_pending() -> None:
    states = run([FIRE, CLEAR, FIRE, FIRE, FIRE], cooldown=2)
    assert [s.state for s in states] == ["firing", "resolved", "pending", "pending", "firing"]
    no_cooldown = run([FIRE, CLEAR, FIRE], cooldown=0)
    assert [s.state for s in no_cooldown] == ["firing", "resolved", "firing"]


def test_no_flapping_on_a_condition_that_alternates_every_cycle() -> None:
    noisy = [FIRE, CLEAR] * 12
    states = run(noisy, cooldown=2)
    previous = ["ok", *[s.state for s in states]]
    entries = sum(
        1 for before, after in zip(previous, states, strict=False) if after.state == "firing" != before
    )
    # A trigger flapping with its condition would fire 12 times; the cooldown allows one in four.
    assert entries <= len(noisy) // 4 + 1
    assert entries >= 1


def test_state_carries_its_reason_and_evidence() -> None:
    state = run([FIRE])[0]
    assert state.reason == "bad"
    assert state.evidence == {"statistic": 9.0}


# --------------------------------------------------------------------------- decide()


def quality(value: float, n: float) -> ScopeQuality:
    return ScopeQuality(
        scope="all",
        value=value,
        low=max(0.0, value - 0.1),
        high=min(1.0, value + 0.1),
        labelled=int(n),
        passes_eff=value * n,
        n_eff=n,
        method="weighted",
    )


def facts(rates: Sequence[float | None], n: float = 200, outputs: int = 500) -> list[CycleFacts]:
    return [
        CycleFacts(
            at=T0 + i * WEEK,
            outputs=outputs,
            human_labels_received=0 if rate is None else int(n),
            labels_received=0 if rate is None else int(n),
            quality={} if rate is None else {"all": quality(rate, n)},
            drift_checked=True,
        )
        for i, rate in enumerate(rates)
    ]


BASELINE = Baseline(version=1, pass_rate=0.93, n_eff=800.0, segments={})
SETTINGS = FeatureSettings(owner="alice@example.com", decision_owner="bob@example.com")


def replay(
    settings: FeatureSettings,
    history: Sequence[CycleFacts],
    override: tuple[str, str] | None = None,
) -> tuple[list[str], dict[tuple[str, str], TriggerState], list[list[Transition]]]:
    """Run `decide` cycle by cycle, as the cycle does; returns the modes, final states, transitions."""
    states: dict[tuple[str, str], TriggerState] = {}
    modes: list[str] = []
    transitions: list[list[Transition]] = []
    for i in range(len(history)):
        decision = decide(settings, BASELINE, history[: i + 1], states, override, history[i].at)
        states = decision.states
        modes.append(decision.mode)
        transitions.append(list(decision.transitions))
    return modes, states, transitions


def test_a_collapse_fires_retrain_and_fallback_and_the_mode_leaves_normal() -> None:
    modes, states, _ = replay(SETTINGS, facts([0.93, 0.92, 0.50, 0.52, 0.49]))
    assert states[("retrain", "all")].state == "firing"
    assert states[("fallback", "all")].state == "firing"
    assert modes[:2] == ["normal", "normal"]
    assert modes[-1] == "review"


def test_the_fallback_mode_is_the_configured_one() -> None:
    settings = FeatureSettings(owner="alice", fallback_mode="off")
    modes, _, _ = replay(settings, facts([0.93, 0.50, 0.50, 0.50]))
    assert modes[-1] == "off"


def test_a_steady_feature_stays_normal_with_nothing_firing() -> None:
    modes, states, _ = replay(SETTINGS, facts([0.93, 0.92, 0.94, 0.93, 0.925, 0.935, 0.93, 0.92]))
    assert set(modes) == {"normal"}
    assert all(s.state in ("ok", "pending") for s in states.values())


@pytest.mark.parametrize("override_mode", ["normal", "off"])
def test_a_manual_override_wins_over_fallback(override_mode: str) -> None:
    modes, states, _ = replay(
        SETTINGS, facts([0.93, 0.50, 0.50, 0.50]), override=(override_mode, "incident 42: handled by hand")
    )
    assert states[("fallback", "all")].state == "firing"  # the evidence is still recorded
    assert set(modes) == {override_mode}
    decision = decide(SETTINGS, BASELINE, facts([0.5, 0.5]), states, (override_mode, "incident 42"), T0)
    assert decision.mode_reason == "manual override: incident 42"


def test_the_decision_says_whether_an_override_set_the_mode() -> None:
    """The cycle stores it, so that the mode is known to end with the override (not by its text)."""
    _, states, _ = replay(SETTINGS, facts([0.93, 0.50, 0.50, 0.50]))
    overridden = decide(SETTINGS, BASELINE, facts([0.5, 0.5]), states, ("normal", "fallback says so"), T0)
    assert overridden.mode_by_override and overridden.mode == "normal"
    by_triggers = decide(SETTINGS, BASELINE, facts([0.5, 0.5]), states, None, T0)
    assert not by_triggers.mode_by_override and by_triggers.mode_reason.startswith("fallback: ")


def test_transitions_carry_numbers_and_the_owner_they_are_for() -> None:
    _, _, transitions = replay(SETTINGS, facts([0.93, 0.50, 0.50, 0.50]))
    flat = [t for cycle in transitions for t in cycle]
    fired = {(t.trigger, t.scope): t for t in flat if t.to_state == "firing"}
    retrain, fallback = fired[("retrain", "all")], fired[("fallback", "all")]
    assert retrain.owner == "alice@example.com"
    assert fallback.owner == "bob@example.com"  # the decision owner decides on the mode
    for event in (retrain, fallback):
        evidence = event.evidence
        assert event.reason
        assert any(isinstance(v, float | int) and not isinstance(v, bool) for v in evidence.values())
    assert retrain.evidence["statistic"] >= retrain.evidence["threshold"]
    assert fallback.evidence["pass_rate"] < fallback.evidence["floor"]


def test_without_a_decision_owner_fallback_goes_to_the_owner() -> None:
    _, _, transitions = replay(FeatureSettings(owner="alice"), facts([0.93, 0.50, 0.50, 0.50]))
    owners = {t.owner for cycle in transitions for t in cycle}
    assert owners == {"alice"}


def test_no_labels_is_not_good_news_it_is_stale() -> None:
    settings = FeatureSettings(owner="alice", stale_cycles=2)
    _, states, transitions = replay(settings, facts([0.93, 0.93, None, None, None]))
    assert states[("stale", "all")].state == "firing"
    stale_events = [t for cycle in transitions for t in cycle if t.trigger == "stale"]
    assert [t.to_state for t in stale_events] == ["pending", "firing"]
    assert stale_events[-1].evidence["cycles"] == 2


def test_deciding_twice_on_the_same_history_gives_the_same_answer() -> None:
    history = facts([0.93, 0.80, 0.70, 0.75])
    first = decide(SETTINGS, BASELINE, history, {}, None, T0)
    second = decide(SETTINGS, BASELINE, history, {}, None, T0)
    assert first == second


# --------------------------------------------------------------------------- the detectors


def test_a_collapse_at_twenty_labels_fires_retrain_in_two_cycles_through_a_fast_detector() -> None:
    """12 and 11 of 20 pass after weeks at 18-19 of 20: the slow CUSUM alone has not seen enough;
    a member tuned to a collapse has, and it dates the change at the collapse for `fallback`."""
    history = facts([0.95, 0.90, 0.90, 0.95, 0.60, 0.55], n=20)
    _, states, transitions = replay(SETTINGS, history)
    retrain = states[("retrain", "all")]
    assert retrain.state == "firing"
    fired_at = [
        i
        for i, cycle in enumerate(transitions)
        for t in cycle
        if t.trigger == "retrain" and t.to_state == "firing"
    ]
    assert fired_at[0] <= 5
    detectors = retrain.evidence["detectors"]
    assert list(detectors) == ["5", "20", "40"]  # retrain_drop, then doubled past fallback_drop
    slow, fast = detectors["5"], detectors["20"]
    assert slow[1] == pytest.approx(6.0) and slow[0] < slow[1]  # the slow member would still wait
    assert fast[1] == pytest.approx(3.0 + math.log(2), abs=1e-4) and fast[0] >= fast[1]
    assert retrain.evidence["drop"] >= 0.2
    assert retrain.evidence["cycles"] == 2  # the change is dated at the collapse


def test_a_slow_slide_is_led_by_the_slow_detector() -> None:
    history = facts([0.93, 0.92, 0.91, 0.90, 0.89, 0.88, 0.87, 0.86], n=50)
    _, states, _ = replay(SETTINGS, history)
    evidence = states[("retrain", "all")].evidence
    assert evidence["drop"] == pytest.approx(0.05)
    assert evidence["detectors"]["20"][0] == 0.0  # a collapse detector sees nothing in a slide


def test_segments_pay_the_bonferroni_toll_on_every_detector() -> None:
    def cycle(i: int) -> CycleFacts:
        scopes = {"all": quality(0.93, 200)} | {
            f"segment:lang={code}": replace(quality(0.93, 50), scope=f"segment:lang={code}")
            for code in "abcd"
        }
        return CycleFacts(T0 + i * WEEK, 500, 200, 200, scopes, drift_checked=True)

    decision = decide(SETTINGS, BASELINE, [cycle(0), cycle(1)], {}, None, T0)
    detectors = decision.states[("retrain", "segment:lang=a")].evidence["detectors"]
    toll = math.log(4)
    assert detectors["5"][1] == pytest.approx(6.0 + toll, abs=1e-4)
    assert detectors["20"][1] == pytest.approx(3.0 + math.log(2) + toll, abs=1e-4)


def test_fallback_is_the_score_test_against_the_floor() -> None:
    """One window of 60 labels at 61.7% (37 passes) against a floor of 78%: z at the floor's variance."""
    history = facts([0.93, 0.93, 0.93], n=200) + [
        replace(cycle, at=T0 + (3 + i) * WEEK) for i, cycle in enumerate(facts([37 / 60], n=60))
    ]
    condition = fallback_condition(SETTINGS, BASELINE, history, run_start=3)
    floor = 0.93 - 0.15
    se = math.sqrt(floor * (1 - floor) / 60 + 0.93 * 0.07 / 800)
    assert condition.evidence["z"] == pytest.approx(round((floor - 37 / 60) / se, 3), abs=1e-3)
    assert condition.level == "firing"


def test_a_segment_whose_baseline_labels_all_passed_still_allows_for_its_baseline_error() -> None:
    """40 of 40 passed in the baseline: pooled towards the feature's 93%, and lowered by the standard
    error of 40 labels at the pooled rate (not by zero, which the segment's own 100% would give)."""
    baseline = Baseline(1, 0.93, 800.0, {"segment:lang=es": (1.0, 40.0)})
    p0, n0, se, shrink = _scope_baseline(SETTINGS, baseline, "segment:lang=es")
    assert p0 == pytest.approx((40 + 0.93 * 100) / 140)
    assert n0 == 140
    assert se == pytest.approx(math.sqrt(p0 * (1 - p0) / 40))
    assert shrink == pytest.approx(se) and shrink > 0.03
