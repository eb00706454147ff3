"""The Bernoulli CUSUM and the proxy-powered pass rate, against hand computations and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import weighted_pass_rate
from monitor.stats.proxy import proxy_powered_pass_rate
from monitor.stats.sequential import BernoulliCusum, CusumFamily

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


def _family() -> CusumFamily:
    slow = BernoulliCusum(p0=0.91, delta=0.04, threshold=6.0, cap=12.0)
    fast = [BernoulliCusum(p0=0.89, delta=d, threshold=3.7, cap=7.4) for d in (0.19, 0.39)]
    return CusumFamily((slow, *fast))


def test_a_family_runs_each_member_as_it_would_run_alone() -> None:
    family = _family()
    counts = [(19.0, 20.0), (18.0, 20.0), (0.0, 0.0), (11.0, 20.0), (12.0, 20.0)]
    path = family.run(counts)
    for member, member_path in zip(family.members, path.paths, strict=True):
        assert member_path == member.run(counts)
    assert path.thresholds == (6.0, 3.7, 3.7)
    shares = [p.last / h for p, h in zip(path.paths, path.thresholds, strict=True)]
    assert path.shares == pytest.approx(shares)
    assert path.leader == shares.index(max(shares)) and path.share == max(shares)
    assert path.signalled == any(p.last >= h for p, h in zip(path.paths, path.thresholds, strict=True))


def test_after_a_collapse_a_fast_member_leads_and_dates_the_change_sharply() -> None:
    """The slow member has wandered up for weeks before the collapse; the fast one had not."""
    counts = [(17.0, 20.0)] * 6 + [(11.0, 20.0), (12.0, 20.0)]
    path = _family().run(counts)
    assert path.paths[0].values[5] > 0.0
    assert path.signalled and path.leader > 0
    assert path.run_start == 6  # the fast member's evidence starts at the collapse
    assert path.paths[0].run_start[-1] < 6  # the slow one's started during the wander


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12),
    st.integers(1, 4),
)
def test_the_window_limited_cusum_is_the_best_recent_run_of_evidence(
    pairs: list[tuple[int, int]], window: int
) -> None:
    """S_t = max(0, max over the last `window` labelled cycles k of the increments from k to t)."""
    counts = [(float(min(a, b)), float(b)) for a, b in pairs]
    member = BernoulliCusum(p0=0.9, delta=0.2, threshold=3.0, window=window)
    path = member.run(counts)
    for t in range(len(counts)):
        labelled = [i for i in range(t + 1) if counts[i][1] > 0][-window:]
        sums = {k: sum(member.increment(*counts[i]) for i in labelled if i >= k) for k in labelled}
        best = max([0.0, *sums.values()])
        assert path.values[t] == pytest.approx(best, abs=1e-9)
        if best > 0:
            assert sums[path.run_start[t]] == pytest.approx(best, abs=1e-9)
    # With a window as long as the history it is the plain CUSUM.
    assert member.run(counts[:window]).values == pytest.approx(
        BernoulliCusum(p0=0.9, delta=0.2, threshold=3.0).run(counts[:window]).values
    )


def test_a_family_checks_its_members() -> None:
    with pytest.raises(ValueError):
        CusumFamily(())
    slow = BernoulliCusum(p0=0.9, delta=0.2, threshold=6.0)
    with pytest.raises(ValueError):
        CusumFamily((slow, BernoulliCusum(p0=0.9, delta=0.1, threshold=3.0)))  # not decreasing


def test_a_member_at_h_plus_log_k_alarms_at_most_e_to_the_minus_h_over_k_of_runs() -> None:
    """Wald's bound behind the Bonferroni toll: under the null, a run of evidence reaches h with
    probability at most e^-h; a member at h + log K at most e^-h / K (one label per step)."""
    rng = np.random.default_rng(11)
    h, k, runs = 2.0, 3, 4000
    member = BernoulliCusum(p0=0.9, delta=0.2, threshold=h + math.log(k))
    up, down = math.log((1 - member.p1) / (1 - member.p0)), math.log(member.p1 / member.p0)
    reached = 0
    for _ in range(runs):
        walk = 0.0
        while 0.0 <= walk < member.threshold:  # one run of evidence: from 0 until it falls below or signals
            walk += up if rng.random() > member.p0 else down
        reached += walk >= member.threshold
    # e^-2 / 3 = 4.5%; the overshoot of the last step makes the true rate smaller.
    assert reached / runs <= math.exp(-h) / k, reached / runs


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
    # The interval pays for its coverage in cells where no disagreement was seen (two pseudo-labels
    # spread over the cells, monitor.stats.ppi): 0.81x the labels' width at 93 %, 0.70x at 80 %.
    assert np.mean(widths) < 0.85 * np.mean(plain_widths)


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
