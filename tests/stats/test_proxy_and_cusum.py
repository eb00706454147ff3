"""The Bernoulli CUSUM and the proxy-powered pass rate, against hand computations and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import weighted_pass_rate
from monitor.stats.proxy import proxy_powered_pass_rate
from monitor.stats.sequential import BernoulliCusum

ACTIONS_IF_PASS = (("accepted", 0.80), ("edited", 0.14), ("ignored", 0.06))
ACTIONS_IF_FAIL = (("rejected", 0.40), ("edited", 0.33), ("retried", 0.22), ("ignored", 0.05))


def test_cusum_matches_the_recursion_by_hand() -> None:
    detector = BernoulliCusum(p0=0.9, delta=0.1, threshold=3.0)
    up, down = math.log(0.2), math.log(0.8 / 0.9)  # a fail, a pass: log((1-p1)/(1-p0)), log(p1/p0)
    counts = [(45.0, 50.0), (40.0, 50.0), (50.0, 50.0), (0.0, 0.0), (35.0, 50.0)]
    expected, statistic = [], 0.0
    for passes, n in counts:
        if n:
            statistic = max(0.0, statistic + passes * down + (n - passes) * (up - math.log(0.1)))
        expected.append(statistic)
    path = detector.run(counts)
    assert path.values == pytest.approx(expected)
    assert path.values[3] == path.values[2]  # a cycle without labels moves nothing
    # The run of evidence that holds the last value started where the statistic last left zero.
    assert path.run_start[-1] == max(i for i, v in enumerate([0.0, *expected[:-1]]) if v == 0.0)


def test_cusum_cap_and_validation() -> None:
    capped = BernoulliCusum(p0=0.9, delta=0.2, threshold=2.0, cap=4.0)
    assert capped.run([(0.0, 100.0)]).last == 4.0
    with pytest.raises(ValueError):
        BernoulliCusum(p0=1.0, delta=0.1, threshold=1.0)
    with pytest.raises(ValueError):
        BernoulliCusum(p0=0.5, delta=0.6, threshold=1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=30))
def test_cusum_is_never_negative_and_counts_only_the_evidence_it_is_given(
    pairs: list[tuple[int, int]],
) -> None:
    counts = [(float(min(a, b)), float(b)) for a, b in pairs]
    path = BernoulliCusum(p0=0.93, delta=0.05, threshold=6.0).run(counts)
    assert all(v >= 0.0 for v in path.values)
    assert len(path.values) == len(counts)


def _window(rng: np.random.Generator, size: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    passed = rng.random(size) < rate
    actions = np.empty(size, dtype=object)
    for flag, table in ((True, ACTIONS_IF_PASS), (False, ACTIONS_IF_FAIL)):
        names = [name for name, _ in table]
        weights = np.array([w for _, w in table])
        chosen = rng.choice(len(names), size=int((passed == flag).sum()), p=weights / weights.sum())
        actions[passed == flag] = np.array(names, dtype=object)[chosen]
    return passed, actions


def _model(rng: np.random.Generator) -> dict[str, float]:
    passed, actions = _window(rng, 800, 0.93)
    return {a: (passed[actions == a].sum() + 2 * 0.93) / ((actions == a).sum() + 2) for a in set(actions)}


@pytest.mark.parametrize("rate", [0.93, 0.80, 0.65])
def test_proxy_estimate_is_unbiased_covers_and_beats_the_labels_alone(rate: float) -> None:
    rng = np.random.default_rng(11)
    model = _model(rng)
    errors, covered, widths, plain_widths = [], 0, [], []
    runs = 600
    for _ in range(runs):
        passed, actions = _window(rng, 500, rate)
        drawn = rng.choice(500, size=50, replace=False)
        counts = {a: int((actions == a).sum()) for a in set(actions)}
        estimate = proxy_powered_pass_rate(
            passed[drawn].astype(float).tolist(), [0.1] * 50, list(actions[drawn]), counts, model, power=1.0
        )
        truth = passed.mean()
        errors.append(estimate.value - truth)
        covered += estimate.low <= truth <= estimate.high
        widths.append(estimate.high - estimate.low)
        plain = weighted_pass_rate(passed[drawn].astype(float), [0.1] * 50)
        plain_widths.append(plain.high - plain.low)
    assert abs(np.mean(errors)) < 0.004  # unbiased: the human residuals correct the proxy
    assert covered / runs >= 0.90
    assert np.mean(widths) < 0.8 * np.mean(plain_widths)


def test_a_useless_proxy_gives_the_plain_weighted_estimate() -> None:
    verdicts = [1.0] * 40 + [0.0] * 10
    same_prediction = {"accepted": 0.8}
    estimate = proxy_powered_pass_rate(
        verdicts, [0.1] * 50, ["accepted"] * 50, {"accepted": 500}, same_prediction
    )
    plain = weighted_pass_rate(verdicts, [0.1] * 50)
    assert (estimate.value, estimate.low, estimate.high, estimate.method) == (
        plain.value,
        plain.low,
        plain.high,
        plain.method,
    )
