"""The design-weighted PPI++ pass rate (judge verdicts or user actions as a covariate on the
whole window): against ppi_py, its tuned weight, and unbiasedness and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate
from ppi_py.ppi import _calc_lam_glm

from monitor.decide.sampling import Candidate, SamplingPlan, draw
from monitor.stats import weighted_pass_rate
from monitor.stats.ppi import covariate_powered_pass_rate

PREDICTION = {"pass": 1.0, "fail": 0.0}


def _cells(judge: np.ndarray) -> list[str]:
    return ["pass" if v else "fail" for v in judge]


def _window(judge: np.ndarray) -> dict[str, int]:
    return {"pass": int(judge.sum()), "fail": int(judge.size - judge.sum())}


def _judge(rng: np.random.Generator, y: np.ndarray, sensitivity: float, specificity: float) -> np.ndarray:
    u = rng.random(y.size)
    return np.where(y == 1, u < sensitivity, u >= specificity).astype(float)


def test_equal_probabilities_match_ppi_py() -> None:
    """The tuned weight and the point estimate are ppi_py's exactly; the interval closely."""
    rng = np.random.default_rng(11)
    big_n, n = 5000, 500
    y_all = (rng.random(big_n) < 0.8).astype(float)
    f_all = _judge(rng, y_all, 0.95, 0.7)
    idx = rng.choice(big_n, n, replace=False)
    y, f = y_all[idx], f_all[idx]
    theta = float(np.ravel(ppi_mean_pointestimate(y, f, f_all, lam=1))[0])  # ppi_py centres all at it
    grads = [(values - theta)[:, None] for values in (y, f, f_all)]
    lam = _calc_lam_glm(*grads, np.eye(1), clip=True)
    ours = covariate_powered_pass_rate(y, np.full(n, n / big_n), _cells(f), _window(f_all), PREDICTION)
    assert ours.lam == pytest.approx(lam, rel=1e-12)
    fixed = covariate_powered_pass_rate(
        y, np.full(n, n / big_n), _cells(f), _window(f_all), PREDICTION, power=ours.lam
    )
    reference = ppi_mean_pointestimate(y, f, f_all, lam=ours.lam)
    assert fixed.estimate.value == pytest.approx(float(np.ravel(reference)[0]), abs=1e-12)
    low, high = ppi_mean_ci(y, f, f_all, alpha=0.05, lam=ours.lam)
    assert fixed.estimate.low == pytest.approx(float(np.ravel(low)[0]), abs=0.004)
    assert fixed.estimate.high == pytest.approx(float(np.ravel(high)[0]), abs=0.004)
    # the cross-fitted estimate (power tuned on the other labels) stays within a hair of it
    assert ours.estimate.value == pytest.approx(fixed.estimate.value, abs=0.002)


def test_design_weights_match_ppi_py_sample_weights() -> None:
    rng = np.random.default_rng(5)
    big_n, n = 2000, 80
    y_all = (rng.random(big_n) < 0.85).astype(float)
    f_all = _judge(rng, y_all, 0.9, 0.6)
    idx = rng.choice(big_n, n, replace=False)
    pi = np.where(rng.random(n) < 0.5, 0.02, 0.08)
    ours = covariate_powered_pass_rate(
        y_all[idx], pi, _cells(f_all[idx]), _window(f_all), PREDICTION, power=0.7
    )
    reference = ppi_mean_pointestimate(y_all[idx], f_all[idx], f_all, lam=0.7, w=1 / pi)
    assert ours.estimate.value == pytest.approx(float(np.ravel(reference)[0]), abs=1e-12)


def test_weight_is_zero_not_nan_when_the_judge_has_no_variance_in_the_sample() -> None:
    y = np.array([1.0] * 18 + [0.0] * 4)
    pi = np.full(y.size, 0.1)
    window = {"pass": 200, "fail": 20}
    found = covariate_powered_pass_rate(y, pi, ["pass"] * y.size, window, PREDICTION)
    plain = weighted_pass_rate(y, pi)
    assert found.lam == 0.0
    assert (found.estimate.value, found.estimate.low, found.estimate.high) == (
        plain.value,
        plain.low,
        plain.high,
    )


def test_weight_falls_to_zero_when_the_judge_stops_agreeing() -> None:
    rng = np.random.default_rng(3)
    big_n, n = 4000, 400
    y_all = (rng.random(big_n) < 0.8).astype(float)
    useless = (rng.random(big_n) < 0.9).astype(float)  # says pass at random
    idx = rng.choice(big_n, n, replace=False)
    found = covariate_powered_pass_rate(
        y_all[idx], np.full(n, 0.1), _cells(useless[idx]), _window(useless), PREDICTION
    )
    assert found.lam < 0.1
    good = _judge(rng, y_all, 0.97, 0.9)
    helped = covariate_powered_pass_rate(
        y_all[idx], np.full(n, 0.1), _cells(good[idx]), _window(good), PREDICTION
    )
    assert helped.lam > 0.6 and helped.estimate.n > 1.5 * n


def _simulate(design: str, big_n: int, n: int, p: float, reps: int, seed: int) -> tuple[float, float]:
    """Mean error and coverage of the window's pass rate, with the sampler's own draw: strata
    by segment, over-sampling of the least confident (who fail more)."""
    rng = np.random.default_rng(seed)
    errors, covered = [], 0
    plan = SamplingPlan(
        size=n,
        min_per_stratum=3,
        stratify_by=None,
        max_strata=50,
        low_confidence_share=0.5 if design == "over" else 0.0,
    )
    for _ in range(reps):
        segment = rng.random(big_n) < 0.3
        confidence = rng.random(big_n)
        y = (rng.random(big_n) < np.clip(p + 0.16 * (confidence - 0.5) - 0.04 * segment, 0, 1)).astype(float)
        judge = _judge(rng, y, 0.95, 0.7)
        candidates = [
            Candidate(str(i), {"k": "b" if segment[i] else "a"}, float(confidence[i])) for i in range(big_n)
        ]
        drawn = draw(candidates, plan, int(rng.integers(1 << 30)))
        idx = np.array([int(d.output_id) for d in drawn])
        pi = np.array([d.inclusion_prob for d in drawn])
        found = covariate_powered_pass_rate(
            y[idx], pi, _cells(judge[idx]), _window(judge), PREDICTION
        ).estimate
        truth = float(y.mean())
        errors.append(found.value - truth)
        covered += found.low <= truth <= found.high
    return float(np.mean(errors)), covered / reps


@pytest.mark.parametrize(
    ("design", "big_n", "n", "p"),
    [("strat", 30, 10, 0.9), ("over", 40, 15, 0.95), ("strat", 40, 20, 0.85), ("over", 30, 10, 0.9)],
)
def test_small_samples_keep_coverage(design: str, big_n: int, n: int, p: float) -> None:
    """400 runs: the binomial margin of a 0.95 coverage is 2 x 0.011; the interval may be wider
    (humans-only below 20 labels), never narrower than nominal minus that margin."""
    _, coverage = _simulate(design, big_n, n, p, 400, seed=big_n + n)
    assert coverage >= 0.95 - 0.022


@pytest.mark.slow
@pytest.mark.parametrize(("design", "p"), [("strat", 0.9), ("over", 0.9), ("over", 0.95)])
def test_usual_sizes_are_unbiased_and_cover(design: str, p: float) -> None:
    """n = 50 of N = 1000, 400 runs: standard error of the mean error ~0.002, of coverage 0.011.
    Over-sampling the least confident makes the judge's rare misses land on heavy weights; the
    pseudo-labels per cell and stratum keep the interval at nominal there too."""
    bias, coverage = _simulate(design, 1000, 50, p, 400, seed=7)
    assert abs(bias) < 0.006
    assert coverage >= 0.95 - 0.022


@settings(max_examples=80, deadline=None)
@given(
    labels=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.sampled_from([0.02, 0.05, 0.2])), min_size=20, max_size=60
    ),
    judge_pass_share=st.floats(0.05, 0.95),
)
def test_the_interval_is_never_from_fewer_labels_than_the_humans_alone(
    labels: list[tuple[bool, bool, float]], judge_pass_share: float
) -> None:
    """Whatever the judge and the design, the powered interval's size is at least Kish's size
    of the labels: the pseudo-labels make a weak judge's interval honest, never wider than the
    labels alone."""
    y = np.array([float(human) for human, _, _ in labels])
    pi = np.array([p for _, _, p in labels])
    cells = ["pass" if said else "fail" for _, said, _ in labels]
    window = {"pass": round(2000 * judge_pass_share), "fail": round(2000 * (1 - judge_pass_share))}
    found = covariate_powered_pass_rate(y, pi, cells, window, PREDICTION)
    assert found.estimate.n >= found.kish_n - 1e-9
    assert found.estimate.low <= found.estimate.value <= found.estimate.high
