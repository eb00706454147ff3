"""Intervals for pass rates: against statsmodels, SciPy and published worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import (  # type: ignore[import-untyped]
    confint_proportions_2indep,
    proportion_confint,
)

from monitor.stats import (
    Estimate,
    fisher_exact_test,
    jeffreys_interval,
    newcombe_difference,
    weighted_pass_rate,
    wilson_interval,
)

GRID = [(x, n) for n in (1, 2, 5, 10, 17, 50, 263, 1000) for x in sorted({0, 1, n // 3, n // 2, n - 1, n})]


# --------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(("x", "n"), GRID)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(x: int, n: int, confidence: float) -> None:
    low, high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    estimate = wilson_interval(x, n, confidence)
    assert estimate.low == pytest.approx(low, abs=1e-12)
    assert estimate.high == pytest.approx(high, abs=1e-12)
    assert estimate.value == x / n
    assert (estimate.n, estimate.method, estimate.confidence) == (n, "wilson", confidence)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        # R. G. Newcombe (1998), "Two-sided confidence intervals for the single proportion:
        # comparison of seven methods", Statistics in Medicine 17:857-872, Table II, method 3 (score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_published_examples(x: int, n: int, low: float, high: float) -> None:
    estimate = wilson_interval(x, n)
    assert round(estimate.low, 4) == low
    assert round(estimate.high, 4) == high


def test_wilson_accepts_effective_counts() -> None:
    estimate = wilson_interval(12.5, 20.25)
    assert 0 < estimate.low < 12.5 / 20.25 < estimate.high < 1
    assert estimate.n == 20.25


@pytest.mark.parametrize(("x", "n"), [(0, 0), (1, 0), (-1, 5), (6, 5), (math.nan, 5), (1, math.inf)])
def test_wilson_rejects_bad_counts(x: float, n: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(x, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_rejects_bad_confidence(confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence)
    with pytest.raises(ValueError):
        jeffreys_interval(1, 2, confidence)


# --------------------------------------------------------------------------- Jeffreys


@pytest.mark.parametrize(("x", "n"), [(x, n) for x, n in GRID if 0 < x < n])
def test_jeffreys_matches_statsmodels_inside(x: int, n: int) -> None:
    low, high = proportion_confint(x, n, alpha=0.05, method="jeffreys")
    estimate = jeffreys_interval(x, n)
    assert estimate.low == pytest.approx(low, abs=1e-12)
    assert estimate.high == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize("n", [1, 7, 50])
def test_jeffreys_boundary_convention(n: int) -> None:
    # Brown, Cai & DasGupta (2001), section 4.1.2: lower bound 0 at x = 0, upper bound 1 at x = n.
    at_zero = jeffreys_interval(0, n)
    at_n = jeffreys_interval(n, n)
    assert at_zero.low == 0.0
    assert at_zero.high == pytest.approx(stats.beta.isf(0.025, 0.5, n + 0.5), abs=1e-12)
    assert at_n.high == 1.0
    assert at_n.low == pytest.approx(stats.beta.ppf(0.025, n + 0.5, 0.5), abs=1e-12)


@pytest.mark.parametrize("n", [1, 5, 20, 79])
def test_jeffreys_lies_inside_clopper_pearson(n: int) -> None:
    for x in range(n + 1):
        low, high = proportion_confint(x, n, method="beta")
        estimate = jeffreys_interval(x, n)
        assert low - 1e-12 <= estimate.low <= estimate.value <= estimate.high <= high + 1e-12


# --------------------------------------------------------------------------- coverage


def _exact_coverage(interval: str, n: int, ps: np.ndarray) -> np.ndarray:
    """Coverage P(low <= p <= high) summed exactly over the binomial distribution of x."""
    function = wilson_interval if interval == "wilson" else jeffreys_interval
    bounds = np.array([(e.low, e.high) for e in (function(x, n) for x in range(n + 1))])
    covers = (bounds[:, 0][None, :] <= ps[:, None]) & (ps[:, None] <= bounds[:, 1][None, :])
    pmf = stats.binom.pmf(np.arange(n + 1)[None, :], n, ps[:, None])
    return np.asarray((pmf * covers).sum(axis=1))


@pytest.mark.parametrize("interval", ["wilson", "jeffreys"])
def test_coverage_near_nominal_at_n_50(interval: str) -> None:
    ps = np.linspace(0.1, 0.9, 161)
    coverage = _exact_coverage(interval, 50, ps)
    # Brown, Cai & DasGupta (2001), figures 4-5: both oscillate around 0.95, dipping below it
    # at some p; the average is close to nominal and no interior p is badly under-covered.
    # (Jeffreys' known dip right next to 0 and 1 — 0.885 at p = 0.95 — is outside this grid.)
    assert 0.945 <= coverage.mean() <= 0.955
    assert coverage.min() >= 0.93


@pytest.mark.parametrize("interval", ["wilson", "jeffreys"])
def test_coverage_matches_simulation(interval: str) -> None:
    rng = np.random.default_rng(1)
    p, n = 0.83, 50
    draws = rng.binomial(n, p, size=4000)
    function = wilson_interval if interval == "wilson" else jeffreys_interval
    table = {x: function(x, n) for x in np.unique(draws)}
    hits = np.mean([table[x].low <= p <= table[x].high for x in draws])
    assert hits == pytest.approx(_exact_coverage(interval, n, np.array([p]))[0], abs=0.015)


# --------------------------------------------------------------------------- weighted


def test_weighted_with_equal_probabilities_is_plain_wilson() -> None:
    passed = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1])
    for pi in (1.0, 0.3, 0.01):
        estimate = weighted_pass_rate(passed, np.full(passed.size, pi))
        plain = wilson_interval(int(passed.sum()), passed.size)
        assert (estimate.value, estimate.low, estimate.high, estimate.n) == (
            plain.value,
            plain.low,
            plain.high,
            plain.n,
        )
        assert estimate.method == "weighted-wilson"


@settings(max_examples=40)
@given(
    data=st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.01, max_value=1.0)), min_size=1, max_size=40
    ),
    scale=st.floats(min_value=0.05, max_value=1.0),
)
def test_weighted_properties(data: list[tuple[bool, float]], scale: float) -> None:
    passed = np.array([d[0] for d in data], dtype=float)
    pi = np.array([d[1] for d in data])
    estimate = weighted_pass_rate(passed, pi)
    weights = 1 / pi
    assert estimate.value == pytest.approx(float(weights @ passed / weights.sum()), abs=1e-12)
    assert 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0
    assert 1.0 - 1e-9 <= estimate.n <= passed.size + 1e-9
    # Hájek is invariant to scaling all probabilities, and to the order of the sample.
    scaled = weighted_pass_rate(passed, pi * scale)
    assert scaled.value == pytest.approx(estimate.value, abs=1e-12)
    assert scaled.low == pytest.approx(estimate.low, abs=1e-9)
    order = np.random.default_rng(len(data)).permutation(passed.size)
    shuffled = weighted_pass_rate(passed[order], pi[order])
    assert shuffled.value == pytest.approx(estimate.value, abs=1e-12)
    assert shuffled.high == pytest.approx(estimate.high, abs=1e-9)


def test_weighted_kish_effective_n() -> None:
    pi = np.array([0.5, 0.5, 0.1, 0.1, 0.1])
    weights = 1 / pi
    estimate = weighted_pass_rate([1, 0, 1, 1, 0], pi)
    assert estimate.n == pytest.approx(weights.sum() ** 2 / (weights**2).sum())
    expected = wilson_interval(estimate.value * estimate.n, estimate.n)
    assert (estimate.low, estimate.high) == pytest.approx((expected.low, expected.high))


def test_weighted_strata_never_narrower_than_kish() -> None:
    rng = np.random.default_rng(3)
    strata = ["low"] * 30 + ["high"] * 20
    passed = np.concatenate([rng.random(30) < 0.5, rng.random(20) < 0.97]).astype(float)
    pi = np.array([0.5] * 30 + [0.02] * 20)
    kish = weighted_pass_rate(passed, pi)
    stratified = weighted_pass_rate(passed, pi, strata=strata)
    assert stratified.value == kish.value
    assert stratified.n <= kish.n
    assert stratified.high - stratified.low >= kish.high - kish.low - 1e-12


@pytest.mark.parametrize(
    ("passed", "pi", "strata"),
    [
        ([], [], None),
        ([1, 0], [0.5], None),
        ([1, 0], [0.5, 0.0], None),
        ([1, 0], [0.5, 1.5], None),
        ([1, 2], [0.5, 0.5], None),
        ([1, 0], [0.5, math.nan], None),
        ([1, 0], [0.5, 0.5], ["a"]),
    ],
)
def test_weighted_rejects_bad_input(passed: list[float], pi: list[float], strata: list[str] | None) -> None:
    with pytest.raises(ValueError):
        weighted_pass_rate(passed, pi, strata=strata)


@pytest.mark.parametrize("use_strata", [False, True])
def test_weighted_coverage_close_to_nominal(use_strata: bool) -> None:
    """A stratified draw that over-samples low-confidence outputs: coverage of the population rate."""
    rng = np.random.default_rng(2026 + use_strata)
    # Population: 9,000 confident outputs passing at 95 %, 1,000 unsure ones passing at 60 %.
    sizes, rates, draws = np.array([9000, 1000]), np.array([0.95, 0.60]), np.array([30, 30])
    truth = float((sizes * rates).sum() / sizes.sum())
    pi = np.repeat(draws / sizes, draws)
    strata = ["confident"] * draws[0] + ["unsure"] * draws[1]
    reps = 1500
    passes = np.concatenate([rng.random((reps, d)) < r for d, r in zip(draws, rates, strict=True)], axis=1)
    covered = 0
    for row in passes:
        estimate = weighted_pass_rate(row, pi, strata=strata if use_strata else None)
        covered += estimate.low <= truth <= estimate.high
    assert 0.92 <= covered / reps <= 0.995


# --------------------------------------------------------------------------- Newcombe


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        # R. G. Newcombe (1998), "Interval estimation for the difference between independent
        # proportions: comparison of eleven methods", Statistics in Medicine 17:873-890,
        # Table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
        (10, 10, 0, 10, 0.6075, 1.0),
    ],
)
def test_newcombe_published_examples(x1: int, n1: int, x2: int, n2: int, low: float, high: float) -> None:
    difference = newcombe_difference(x1, n1, x2, n2)
    assert (round(difference.low, 4), round(difference.high, 4)) == (low, high)
    assert difference.value == pytest.approx(x1 / n1 - x2 / n2)
    assert difference.method == "newcombe-wilson"


@settings(max_examples=60)
@given(
    n1=st.integers(1, 300),
    n2=st.integers(1, 300),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_newcombe_matches_statsmodels(n1: int, n2: int, f1: float, f2: float, confidence: float) -> None:
    x1, x2 = round(f1 * n1), round(f2 * n2)
    low, high = confint_proportions_2indep(
        x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1 - confidence
    )
    difference = newcombe_difference(x1, n1, x2, n2, confidence)
    assert difference.low == pytest.approx(max(float(low), -1.0), abs=1e-12)
    assert difference.high == pytest.approx(min(float(high), 1.0), abs=1e-12)
    assert difference.low <= difference.value <= difference.high


# --------------------------------------------------------------------------- Fisher


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(3, 10, 8, 10), (0, 5, 5, 5), (40, 50, 44, 50), (0, 1, 0, 1)]
)
def test_fisher_matches_scipy(x1: int, n1: int, x2: int, n2: int, alternative: str) -> None:
    expected = stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative=alternative)
    result = fisher_exact_test(x1, n1, x2, n2, alternative=alternative)  # type: ignore[arg-type]
    assert result.p_value == expected.pvalue
    assert result.statistic == pytest.approx(expected.statistic, nan_ok=True)
    assert result.alternative == alternative


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(1.5, 3, 1, 3), (-1, 3, 1, 3), (4, 3, 1, 3)])
def test_fisher_rejects_bad_counts(x1: float, n1: int, x2: int, n2: int) -> None:
    with pytest.raises(ValueError):
        fisher_exact_test(x1, n1, x2, n2)  # type: ignore[arg-type]


@settings(max_examples=50)
@given(n=st.integers(1, 400), f=st.floats(0, 1), confidence=st.floats(0.5, 0.999))
def test_intervals_contain_their_estimate(n: int, f: float, confidence: float) -> None:
    x = round(f * n)
    for estimate in (wilson_interval(x, n, confidence), jeffreys_interval(x, n, confidence)):
        assert isinstance(estimate, Estimate)
        assert 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0
