"""The defaults, shown by simulation: no false alarms on stable quality, a slow slide caught in weeks.

Each simulated feature has a baseline measured like the cycle measures it (the first four
cycles, drawn at the larger sample size), then weekly cycles of labelled samples whose size
follows the rules' own `next_sample_size` (more labels while a drop is building). Only the
labels' binomial noise is simulated; the rules are the real `monitor.decide.triggers.decide`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.config import FeatureSettings
from monitor.decide.quality import ScopeQuality
from monitor.decide.triggers import Baseline, CycleFacts, TriggerState, decide

START = datetime(2026, 1, 5, 6, tzinfo=UTC)
SETTINGS = FeatureSettings()


def _quality(passes: int, n: int) -> ScopeQuality:
    value = passes / n
    return ScopeQuality("all", value, value, value, n, float(passes), float(n), "wilson")


def first_retrain(rates: list[float], rng: np.random.Generator) -> tuple[int | None, bool]:
    """(week index of the first `retrain` firing at scope all, whether `fallback` ever fired)."""
    base_n = SETTINGS.max_sample_size * SETTINGS.baseline_cycles
    base_passes = int(rng.binomial(base_n, rates[0]))
    baseline = Baseline(1, base_passes / base_n, float(base_n), {})
    history: list[CycleFacts] = []
    states: dict[tuple[str, str], TriggerState] = {}
    size = SETTINGS.sample_size
    fallback = False
    for week, rate in enumerate(rates):
        at = START + timedelta(weeks=week)
        passes = int(rng.binomial(size, rate))
        history.append(CycleFacts(at, 500, size, size, {"all": _quality(passes, size)}))
        decision = decide(SETTINGS, baseline, history, states, None, at)
        states = decision.states
        size = decision.next_sample_size
        fallback = fallback or states[("fallback", "all")].state == "firing"
        if states[("retrain", "all")].state == "firing":
            return week, fallback
    return None, fallback


@pytest.mark.slow
def test_a_stable_feature_raises_a_false_alarm_less_than_once_in_two_years() -> None:
    rng = np.random.default_rng(20261124)
    runs, weeks = 120, 104
    alarms = 0
    for _ in range(runs):
        rate = float(rng.uniform(0.80, 0.96))
        week, fallback = first_retrain([rate] * weeks, rng)
        alarms += week is not None
        assert not fallback
    # "Less than once in two years" allows up to 1 - 1/e = 63% of features to see one alarm in
    # two years; the defaults are far stricter than that.
    assert alarms / runs < 0.10, f"{alarms} of {runs} stable features paged someone within two years"


@pytest.mark.slow
def test_a_one_point_a_week_slide_is_caught_within_a_few_weeks() -> None:
    rng = np.random.default_rng(7)
    runs = 120
    delays = []
    for _ in range(runs):
        start = 94
        rates = [0.94] * 6 + [max(0.78, (start - k) / 100) for k in range(1, 20)]
        week, _ = first_retrain(rates, rng)
        assert week is None or week >= 6, "fired before the slide began"
        delays.append(np.inf if week is None else week - 5)
    caught = np.array(delays)
    # Five points down after five weeks: most runs see it by week eight of the slide, all by week 13.
    assert np.mean(caught <= 8) >= 0.8, sorted(caught)
    assert np.all(np.isfinite(caught)) and caught.max() <= 13, sorted(caught)


@pytest.mark.slow
def test_a_collapse_to_below_the_floor_moves_the_mode_within_a_few_weeks() -> None:
    rng = np.random.default_rng(3)
    delays = []
    for _ in range(60):
        rates = [0.92] * 4 + [0.70] * 8
        base_n = SETTINGS.max_sample_size * SETTINGS.baseline_cycles
        baseline = Baseline(1, rng.binomial(base_n, 0.92) / base_n, float(base_n), {})
        history: list[CycleFacts] = []
        states: dict[tuple[str, str], TriggerState] = {}
        size = SETTINGS.sample_size
        modes = []
        for week, rate in enumerate(rates):
            at = START + timedelta(weeks=week)
            passes = int(rng.binomial(size, rate))
            history.append(CycleFacts(at, 500, size, size, {"all": _quality(passes, size)}))
            decision = decide(SETTINGS, baseline, history, states, None, at)
            states, size = decision.states, decision.next_sample_size
            modes.append(decision.mode)
        assert modes[:4] == ["normal"] * 4
        delays.append(modes.index("review") - 3 if "review" in modes else np.inf)
    caught = np.array(delays)
    # 22 points down, the floor 15 below the baseline: most runs degrade within four weeks.
    assert np.mean(caught <= 4) >= 0.85, sorted(caught)
    assert caught.max() <= 8, sorted(caught)
