"""Prediction-powered pass rate (Angelopoulos et al. 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.stats import prediction_powered_pass_rate, wilson_interval


def _judge(rng: np.random.Generator, truth: np.ndarray, sensitivity: float, specificity: float) -> np.ndarray:
    """Says pass to a passing output with prob. ``sensitivity``, to a failing one with 1 - ``specificity``."""
    u = rng.random(truth.size)
    return np.where(truth == 1, u < sensitivity, u >= specificity).astype(float)


def test_formula_by_hand() -> None:
    human = np.array([1, 1, 0, 1, 0, 1.0])
    judge_h = np.array([1, 1, 1, 1, 0, 0.0])
    judge_u = np.array([1, 0, 1, 1, 1, 1, 0, 1.0])
    estimate = prediction_powered_pass_rate(human, judge_h, judge_u)
    theta = judge_u.mean() + (human - judge_h).mean()
    se = math.sqrt(judge_u.var(ddof=1) / 8 + (human - judge_h).var(ddof=1) / 6)
    assert estimate.value == pytest.approx(theta)
    assert estimate.low == pytest.approx(max(theta - 1.959963984540054 * se, 0.0))
    assert estimate.high == pytest.approx(min(theta + 1.959963984540054 * se, 1.0))
    assert (estimate.n, estimate.method) == (6, "ppi")


def test_unbiased_with_a_biased_judge() -> None:
    """A lenient judge (passes 30 % of failures) overstates quality; PPI does not."""
    rng = np.random.default_rng(7)
    p_true, n, big_n, reps = 0.80, 60, 2000, 400
    estimates, judge_only, covered = [], [], 0
    for _ in range(reps):
        truth_h = (rng.random(n) < p_true).astype(float)
        truth_u = (rng.random(big_n) < p_true).astype(float)
        judge_h = _judge(rng, truth_h, 0.97, 0.70)
        judge_u = _judge(rng, truth_u, 0.97, 0.70)
        estimate = prediction_powered_pass_rate(truth_h, judge_h, judge_u)
        estimates.append(estimate.value)
        judge_only.append(judge_u.mean())
        covered += estimate.low <= p_true <= estimate.high
    assert np.mean(judge_only) == pytest.approx(0.80 * 0.97 + 0.20 * 0.30, abs=0.005)  # biased: 0.836
    assert np.mean(estimates) == pytest.approx(p_true, abs=0.006)  # standard error of the mean ~0.002
    assert 0.92 <= covered / reps <= 0.98


def test_tighter_than_humans_alone_when_the_judge_agrees() -> None:
    rng = np.random.default_rng(11)
    widths_ppi, widths_wilson = [], []
    for _ in range(50):
        truth_h = (rng.random(100) < 0.85).astype(float)
        truth_u = (rng.random(5000) < 0.85).astype(float)
        flip_h, flip_u = rng.random(100) < 0.05, rng.random(5000) < 0.05  # agrees 95 % of the time
        judge_h = np.where(flip_h, 1 - truth_h, truth_h)
        judge_u = np.where(flip_u, 1 - truth_u, truth_u)
        ppi = prediction_powered_pass_rate(truth_h, judge_h, judge_u)
        wilson = wilson_interval(truth_h.sum(), truth_h.size)
        widths_ppi.append(ppi.high - ppi.low)
        widths_wilson.append(wilson.high - wilson.low)
    assert np.mean(widths_ppi) < 0.8 * np.mean(widths_wilson)


def test_clipped_to_unit_interval() -> None:
    estimate = prediction_powered_pass_rate([1, 1, 1], [0, 0, 1], [1, 1, 1, 1.0])
    assert estimate.value == 1.0 and estimate.high == 1.0 and estimate.low <= 1.0


@pytest.mark.parametrize(
    ("human", "judge_h", "judge_u"),
    [([1], [1], [1, 0]), ([1, 0], [1, 0], [1]), ([1, 0], [1], [1, 0]), ([1, math.nan], [1, 0], [1, 0])],
)
def test_rejects_bad_input(human: list[float], judge_h: list[float], judge_u: list[float]) -> None:
    with pytest.raises(ValueError):
        prediction_powered_pass_rate(human, judge_h, judge_u)
