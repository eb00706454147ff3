"""Confidence intervals for pass rates, and tests comparing two of them.

A pass rate measured on 50 labels is a range, not a number. Every estimate here is
returned as an :class:`Estimate` (point value, interval, number of observations) so that
callers never drop the interval on the way to a dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitor.stats._common import as_1d_float, check_confidence, check_count, z_value

__all__ = [
    "Difference",
    "Estimate",
    "TestResult",
    "fisher_exact_test",
    "jeffreys_interval",
    "newcombe_difference",
    "weighted_pass_rate",
    "wilson_interval",
]


@dataclass(frozen=True)
class Estimate:
    """A proportion with its two-sided confidence interval.

    ``n`` is the number of observations, or Kish's effective sample size for weighted
    estimates; ``method`` names the interval (``"wilson"``, ``"jeffreys"``,
    ``"weighted-wilson"``, ``"ppi"``).
    """

    value: float
    low: float
    high: float
    n: float
    method: str
    confidence: float


@dataclass(frozen=True)
class Difference:
    """A difference of two proportions ``p1 - p2`` with its confidence interval."""

    value: float
    low: float
    high: float
    method: str
    confidence: float


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test: its statistic, p-value, method and alternative."""

    statistic: float
    p_value: float
    method: str
    alternative: str


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> Estimate:
    r"""Wilson score interval for a binomial proportion.

    With :math:`\hat p = x/n` and :math:`z = \Phi^{-1}(1 - \alpha/2)`:

    .. math::

        \frac{\hat p + z^2/(2n)}{1 + z^2/n} \pm
        \frac{z}{1 + z^2/n}\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}

    clipped to [0, 1]. Counts need not be integers (effective counts from weighted
    samples are accepted). Raises ``ValueError`` if ``n <= 0`` or ``successes`` is
    outside ``[0, n]``: callers check for an empty sample first.

    References: E. B. Wilson (1927), "Probable inference, the law of succession, and
    statistical inference", JASA 22:209-212; L. D. Brown, T. T. Cai, A. DasGupta (2001),
    "Interval estimation for a binomial proportion", Statistical Science 16:101-133.
    """
    check_count(successes, n)
    z = z_value(confidence)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    # Analytically low = 0 at x = 0 and high = 1 at x = n, and the interval contains p; say so
    # exactly rather than leave a 1e-18 of rounding outside [0, 1] or on the wrong side of p.
    low = 0.0 if successes == 0 else min(max(centre - half, 0.0), p)
    high = 1.0 if successes == n else max(min(centre + half, 1.0), p)
    return Estimate(value=p, low=low, high=high, n=float(n), method="wilson", confidence=confidence)


def jeffreys_interval(successes: float, n: float, confidence: float = 0.95) -> Estimate:
    r"""Jeffreys interval: equal-tailed interval of the Beta(x + ½, n − x + ½) posterior.

    .. math::

        \left[B^{-1}_{\alpha/2}(x + \tfrac12, n - x + \tfrac12),\;
              B^{-1}_{1-\alpha/2}(x + \tfrac12, n - x + \tfrac12)\right]

    with the usual boundary convention: the lower bound is 0 when ``x == 0`` and the
    upper bound is 1 when ``x == n``. Counts need not be integers.

    Reference: L. D. Brown, T. T. Cai, A. DasGupta (2001), "Interval estimation for a
    binomial proportion", Statistical Science 16:101-133, section 4.1.2.
    """
    check_count(successes, n)
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    a = successes + 0.5
    b = n - successes + 0.5
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, a, b))
    high = 1.0 if successes == n else float(stats.beta.isf(tail, a, b))
    return Estimate(
        value=successes / n, low=low, high=high, n=float(n), method="jeffreys", confidence=confidence
    )


def weighted_pass_rate(
    passed: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    strata: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> Estimate:
    r"""Pass rate of a population estimated from a sample drawn with unequal probabilities.

    Each reviewed output *i* was drawn with inclusion probability :math:`\pi_i` and
    carries the design weight :math:`w_i = 1/\pi_i`. The point estimate is the Hájek
    (ratio) form of the Horvitz-Thompson estimator,

    .. math:: \hat p = \frac{\sum_i w_i y_i}{\sum_i w_i},

    and the interval is Wilson's computed on Kish's effective sample size

    .. math:: n_\text{eff} = \frac{(\sum_i w_i)^2}{\sum_i w_i^2},

    i.e. ``wilson_interval(p̂ · n_eff, n_eff)``. With equal probabilities this is exactly
    the plain proportion and its Wilson interval. ``passed`` holds 0/1 verdicts (or
    scores in [0, 1]).

    If ``strata`` (one name per item) is given, the design-based variance of
    :math:`\hat p` is also computed by Taylor linearisation for a stratified
    with-replacement design, :math:`v = \sum_h \frac{n_h}{n_h-1}\sum_{i\in h}(z_i-\bar z_h)^2`
    with :math:`z_i = w_i(y_i-\hat p)/\sum w`, giving a second effective size
    :math:`\hat p(1-\hat p)/v`. The smaller of the two is used (conservative: the
    interval is never narrower than Kish's). When that variance cannot be estimated (a
    stratum with one item, or :math:`\hat p \in \{0, 1\}`) Kish's size is used alone.

    References: D. G. Horvitz, D. J. Thompson (1952), JASA 47:663-685; L. Kish (1965),
    *Survey Sampling*, Wiley, section 11.7; C.-E. Särndal, B. Swensson, J. Wretman (1992),
    *Model Assisted Survey Sampling*, Springer, sections 5.7 and 7.3; E. L. Korn,
    B. I. Graubard (1998), "Confidence intervals for proportions with small expected
    number of positive counts estimated from survey data", Survey Methodology 24:193-201.
    """
    y, pi = _checked_design(passed, inclusion_prob)
    weights = 1.0 / pi
    # The Hájek estimator is scale invariant; normalising by the largest weight makes the
    # equal-probability case exact (all weights are then exactly 1.0).
    weights = weights / weights.max()
    total = float(weights.sum())
    weighted_passes = float(weights @ y)
    p_hat = min(max(weighted_passes / total, 0.0), 1.0)
    n_eff = total * total / float(weights @ weights)
    if strata is not None:
        n_eff = min(n_eff, _stratified_effective_n(y, weights, p_hat, strata, total) or n_eff)
    successes = min(max(weighted_passes * n_eff / total, 0.0), n_eff)
    estimate = wilson_interval(successes, n_eff, confidence)
    return Estimate(
        value=p_hat,
        low=min(estimate.low, p_hat),
        high=max(estimate.high, p_hat),
        n=n_eff,
        method="weighted-wilson",
        confidence=confidence,
    )


def _checked_design(
    passed: npt.ArrayLike, inclusion_prob: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The verdicts in [0, 1] and their inclusion probabilities in (0, 1], as float arrays."""
    y = as_1d_float(passed, "passed")
    pi = as_1d_float(inclusion_prob, "inclusion_prob")
    if y.size == 0:
        raise ValueError("weighted_pass_rate needs at least one observation")
    if y.shape != pi.shape:
        raise ValueError(f"passed and inclusion_prob differ in length ({y.size} != {pi.size})")
    if not bool(np.all(np.isfinite(y))) or bool(np.any((y < 0.0) | (y > 1.0))):
        raise ValueError("passed must hold values in [0, 1]")
    if not bool(np.all(np.isfinite(pi))) or bool(np.any((pi <= 0.0) | (pi > 1.0))):
        raise ValueError("inclusion probabilities must be in (0, 1]")
    return y, pi


_MIN_PER_STRATUM = 2  # a stratum's variance needs two items


def _stratified_effective_n(
    y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    p_hat: float,
    strata: Sequence[str],
    total: float,
) -> float | None:
    """``p̂(1-p̂)/v`` for the linearised stratified variance ``v``; None where undefined."""
    if len(strata) != y.size:
        raise ValueError(f"strata has {len(strata)} entries for {y.size} observations")
    if not (0.0 < p_hat < 1.0):
        return None
    names, codes = np.unique(np.asarray(strata, dtype=object).astype(str), return_inverse=True)
    z = weights * (y - p_hat) / total
    counts = np.bincount(codes, minlength=names.size).astype(np.float64)
    if bool(np.any(counts < _MIN_PER_STRATUM)):
        return None
    means = np.bincount(codes, weights=z, minlength=names.size) / counts
    squares = np.bincount(codes, weights=(z - means[codes]) ** 2, minlength=names.size)
    variance = float(np.sum(counts / (counts - 1.0) * squares))
    if variance <= 0.0:
        return None
    return p_hat * (1.0 - p_hat) / variance


def newcombe_difference(x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95) -> Difference:
    r"""Newcombe's hybrid score interval for ``p1 - p2`` (his method 10).

    With Wilson intervals :math:`(l_1, u_1)` and :math:`(l_2, u_2)` for the two
    proportions and :math:`\hat\delta = \hat p_1 - \hat p_2`:

    .. math::

        \left[\hat\delta - \sqrt{(\hat p_1 - l_1)^2 + (u_2 - \hat p_2)^2},\;
              \hat\delta + \sqrt{(u_1 - \hat p_1)^2 + (\hat p_2 - l_2)^2}\right]

    Reference: R. G. Newcombe (1998), "Interval estimation for the difference between
    independent proportions: comparison of eleven methods", Statistics in Medicine
    17:873-890, method 10 (e.g. 56/70 vs 48/80 gives 0.0524 to 0.3339).
    """
    first = wilson_interval(x1, n1, confidence)
    second = wilson_interval(x2, n2, confidence)
    delta = first.value - second.value
    low = delta - math.hypot(first.value - first.low, second.high - second.value)
    high = delta + math.hypot(first.high - first.value, second.value - second.low)
    return Difference(
        value=delta,
        low=max(low, -1.0),
        high=min(high, 1.0),
        method="newcombe-wilson",
        confidence=confidence,
    )


def fisher_exact_test(
    x1: int,
    n1: int,
    x2: int,
    n2: int,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> TestResult:
    r"""Fisher's exact test of equal proportions on the 2×2 table ``[[x1, n1-x1], [x2, n2-x2]]``.

    The p-value sums hypergeometric probabilities of tables with the observed margins
    that are as extreme as the observed one; the statistic is the sample odds ratio
    :math:`x_1(n_2-x_2) / ((n_1-x_1)x_2)`. ``"less"`` tests :math:`p_1 < p_2`.
    Identical to :func:`scipy.stats.fisher_exact` (which computes it).

    Reference: R. A. Fisher (1935), "The logic of inductive inference", JRSS 98:39-82;
    A. Agresti (2013), *Categorical Data Analysis*, 3rd ed., Wiley, section 3.5.
    """
    for name, value in (("x1", x1), ("n1", n1), ("x2", x2), ("n2", n2)):
        if float(value) != int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if x1 > n1 or x2 > n2:
        raise ValueError("successes must not exceed their totals")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"unknown alternative {alternative!r}")
    table = [[int(x1), int(n1) - int(x1)], [int(x2), int(n2) - int(x2)]]
    result = stats.fisher_exact(table, alternative=alternative)
    return TestResult(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        method="fisher-exact",
        alternative=alternative,
    )
