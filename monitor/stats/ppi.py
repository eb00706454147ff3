r"""Prediction-powered inference: a judge's scores on many outputs, corrected by a few humans.

`covariate_powered_pass_rate` estimates a window's pass rate from a few human verdicts and a
categorical covariate known on every output of the window (a judge's verdict, the user's action,
or both).

The human verdicts :math:`y_j` were drawn with inclusion probabilities :math:`\pi_j`
(design weights :math:`w_j = 1/\pi_j`); each output's covariate *cell* (``"judge=pass"``,
``"action=accepted"``...) has a fixed prediction :math:`f` (``prediction``; a cell it does
not name gets the window's mean prediction). ``window_cells`` counts the window's *N*
outputs per cell, the labelled ones included. Design-weighted PPI++:

.. math::

    \hat\theta = \lambda \bar f_N + \frac{\sum_j w_j (y_j - \lambda f_j)}{\sum_j w_j},
    \qquad
    V = \lambda^2 \frac{s^2_f}{N} + \frac{\sum_j w_j^2 (r_j - \bar r_w)^2}{(\sum_j w_j)^2}\frac{n}{n-1}

with :math:`r = y - \lambda f`; for the interval the residual sum also counts two pseudo-labels,
a pass and a fail, spread over the covariate cells of the sampling strata by their weight, so
that a cell where no disagreement was seen does not claim that the covariate never errs there.
:math:`\hat\theta` is unbiased (to first order, like the Hájek estimator) for any fixed
:math:`\lambda` under any inclusion probabilities. The tuned
:math:`\lambda = \widehat{\mathrm{Cov}}_w(y, f) / ((1 + n/N)\, s^2_f)`, clipped to [0, 1], is
PPI++'s (with equal probabilities exactly ``ppi_py``'s: ``s^2_f`` over the labelled and the
window's predictions pooled, ``ddof=1``); it is 0 when *f* has no variance in the sample and
falls to 0 by itself when the covariate stops agreeing with humans. With :math:`\lambda = 0`
the result is the humans-only design-weighted estimate (``weighted_pass_rate``).

The interval is Wilson's on the effective size :math:`n^* = \hat\theta(1-\hat\theta)/V`,
capped at ``max_gain`` times Kish's size of the labels and at *N* (a covariate that happens
to agree perfectly on a small sample cannot claim unlimited precision), and never below
Kish's size (the humans-only interval's): the pseudo-labels make a weak covariate's interval
honest, not wider than the labels alone would give. Below
``min_labels`` human labels the interval is the humans-only one (the point estimate stays
the powered one). References: Angelopoulos, Bates, Fannjiang, Jordan & Zrnic (2023),
Science 382; Angelopoulos, Duchi & Zrnic (2023), "PPI++", arXiv:2311.01453.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.stats._common import FloatArray, as_1d_float
from monitor.stats.intervals import Estimate, weighted_pass_rate, wilson_interval

__all__ = [
    "MIN_ITEMS",
    "MIN_POWERED_LABELS",
    "PoweredPassRate",
    "covariate_powered_pass_rate",
]

MIN_ITEMS = 2  # labels a left-out weight needs (one left out, one to tune on)


TINY = 1e-12
PRIOR_LABELS = 4.0
"""Pseudo-labels at the humans-only variance in the detectors' variance (`evidence_n`)."""
PSEUDO_LABELS = 2.0
"""Pseudo-labels, half passes and half fails, spread over the covariate cells within sampling
strata when the interval's residual variance is estimated (see `_with_pseudo_labels`)."""
MIN_POWERED_LABELS = 20
"""Below this many human labels the covariate-powered estimate gives its point estimate with
the humans-only interval: the tuned weight and the residual variance of a handful of labels are
too noisy for an interval that keeps its coverage (see tests/stats/test_ppi_design.py)."""


@dataclass(frozen=True)
class PoweredPassRate:
    """A covariate-powered pass rate: the estimate, the tuned weight and the pieces behind it."""

    estimate: Estimate
    lam: float
    """The covariate's weight, in [0, 1]: 0 when it has no variance or no agreement with humans."""
    variance: float
    """The estimator's variance (imputed part plus the design-weighted residual part)."""
    labelled: int
    kish_n: float
    """Kish's effective size of the human labels alone (their design weights)."""
    evidence_n: float
    """What the sequential detectors add up: the binomial size of the variance shrunk towards the
    humans-only one by `PRIOR_LABELS` pseudo-labels, the input their false-alarm rates were set
    on by simulation (tests/test_detection_simulation.py). A window's interval needs more: the
    pseudo-labels spread over the cells (see `_with_pseudo_labels`)."""


def covariate_powered_pass_rate(
    verdicts: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    labelled_cells: Sequence[str],
    window_cells: Mapping[str, float],
    prediction: Mapping[str, float],
    confidence: float = 0.95,
    max_gain: float = 4.0,
    power: float | None = None,
    min_labels: int = MIN_POWERED_LABELS,
    method: str = "ppi",
) -> PoweredPassRate:
    """A window's pass rate from a few human verdicts and a categorical covariate known on every
    output of the window (a judge's verdict, the user's action, or both); the module's docstring
    has the maths."""
    y = as_1d_float(verdicts, "verdicts")
    pi = as_1d_float(inclusion_prob, "inclusion_prob")
    if y.size != pi.size or y.size != len(labelled_cells):
        raise ValueError("verdicts, inclusion_prob and labelled_cells differ in length")
    if y.size == 0 or not bool(np.all((pi > 0) & (pi <= 1))):
        raise ValueError("needs at least one labelled item, each with an inclusion probability in (0, 1]")
    plain = weighted_pass_rate(y, pi, None, confidence)
    humans_only = PoweredPassRate(
        plain, 0.0, plain.value * (1 - plain.value) / plain.n, int(y.size), plain.n, plain.n
    )
    counts, f_win, f_lab = _predictions(window_cells, prediction, labelled_cells)
    big_n = float(counts.sum())
    if big_n <= 0:
        return humans_only
    w = 1.0 / pi
    w = w / w.sum() * y.size  # mean 1, as ppi_py normalises sample weights
    lam = _tuned_weight(y, f_lab, w, counts, f_win) if power is None else min(max(power, 0.0), 1.0)
    if lam == 0.0:
        return humans_only
    # The point estimate leaves each label out of its own weight (cross-fitting): a weight tuned
    # on the same labels it is applied to biases the estimate by O(1/n); power=None only.
    lams = _left_out_weights(y, f_lab, w, counts, f_win) if power is None else np.full(y.size, lam)
    theta, variance, raw_variance = _powered(y, w, f_lab, counts, f_win, lams, lam, plain)
    effective = max(_effective_size(theta, variance, plain.n, max_gain, big_n), plain.n)
    evidence = _effective_size(theta, raw_variance, plain.n, max_gain, big_n)
    if y.size < min_labels:
        effective = evidence = plain.n
    interval = wilson_interval(theta * effective, effective, confidence)
    estimate = Estimate(theta, interval.low, interval.high, effective, method, confidence)
    return PoweredPassRate(estimate, lam, variance, int(y.size), plain.n, evidence)


def _predictions(
    window_cells: Mapping[str, float], prediction: Mapping[str, float], labelled_cells: Sequence[str]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The window's counts and predictions per cell, and the labelled items' predictions (a cell
    the prediction does not name gets the window's mean prediction)."""
    names = [cell for cell, count in window_cells.items() if count > 0]
    counts = np.array([float(window_cells[cell]) for cell in names])
    f_win = np.array([prediction.get(cell, math.nan) for cell in names])
    known = np.isfinite(f_win)
    fallback = float((counts[known] * f_win[known]).sum() / counts[known].sum()) if known.any() else 0.5
    f_win = np.where(known, f_win, fallback)
    f_lab = np.array([prediction.get(cell, fallback) for cell in labelled_cells])
    return counts, f_win, f_lab


def _powered(
    y: FloatArray,
    w: FloatArray,
    f_lab: FloatArray,
    counts: FloatArray,
    f_win: FloatArray,
    lams: FloatArray,
    lam: float,
    plain: Estimate,
) -> tuple[float, float, float]:
    """The estimate, its variance for the interval and for the detectors (see `evidence_n`): the
    imputed part plus the design-weighted residuals, taken from the same left-out terms as the
    estimate, so the weight's own noise counts too."""
    big_n, n = float(counts.sum()), float(y.size)
    mean_f = float((counts * f_win).sum() / big_n)
    var_f = float((counts * (f_win - mean_f) ** 2).sum() / max(big_n - 1.0, 1.0))
    terms = y - lams * (f_lab - mean_f)
    raw = float((w * terms).mean())
    theta = min(max(raw, 0.0), 1.0)
    imputed = lam**2 * var_f / big_n
    humans_only = max(theta * (1 - theta), plain.value * (1 - plain.value)) / plain.n
    unsmoothed = _rectifier(w, terms, np.ones(w.size), raw)
    shrunk = (n * unsmoothed + PRIOR_LABELS * humans_only) / (n + PRIOR_LABELS)
    rectifier = _rectifier(*_with_pseudo_labels(w, f_lab, lams, terms, mean_f), raw)
    return theta, imputed + rectifier, imputed + shrunk


def _rectifier(w: FloatArray, residuals: FloatArray, counts: FloatArray, centre: float) -> float:
    """The design-weighted residuals' variance of their mean (`counts`: how many labels each is)."""
    total = float(counts.sum())
    spread = float((counts * w**2 * (residuals - centre) ** 2).sum())
    return spread / total**2 * (total / max(total - 1.0, 1.0))


def _with_pseudo_labels(
    w: FloatArray, f_lab: FloatArray, lams: FloatArray, terms: FloatArray, mean_f: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The labels' weights, residuals and counts, plus `PSEUDO_LABELS` in all, half a pass and
    half a fail, spread over the groups of labels sharing a prediction and a design weight (a
    covariate cell within a sampling stratum) in proportion to the group's weight. Disagreements
    between humans and the covariate are rare; a group where none was seen would otherwise claim
    the covariate never errs there, and the interval would be narrowest exactly when the estimate
    is furthest off (Agresti & Caffo's remedy, 2000). A fixed total, not a count per group, so
    that cutting the window into more cells (judges x actions x strata) costs no more."""
    keys = np.column_stack([f_lab, np.round(np.log(w), 9)])
    groups, first, members = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    members = np.ravel(members)
    size = np.bincount(members, minlength=len(groups)).astype(np.float64)
    group_weight = np.bincount(members, weights=w, minlength=len(groups))
    group_w = group_weight / size
    group_lam = np.bincount(members, weights=lams, minlength=len(groups)) / size
    shift = group_lam * (f_lab[first] - mean_f)
    share = PSEUDO_LABELS / 2 * group_weight / group_weight.sum()
    return (
        np.concatenate([w, group_w, group_w]),
        np.concatenate([terms, 1.0 - shift, -shift]),
        np.concatenate([np.ones(w.size), share, share]),
    )


def _tuned_weight(
    y: FloatArray, f_lab: FloatArray, w: FloatArray, counts: FloatArray, f_win: FloatArray
) -> float:
    """PPI++'s power-tuning weight, clipped to [0, 1]; 0 when the prediction has no variance."""
    n, big_n = float(y.size), float(counts.sum())
    y_bar, f_bar = float((w * y).mean()), float((w * f_lab).mean())
    cov = float((w * (y - y_bar) * (f_lab - f_bar)).mean())
    pooled_n = n + big_n
    pooled_mean = float((f_lab.sum() + (counts * f_win).sum()) / pooled_n)
    pooled_ss = float(((f_lab - pooled_mean) ** 2).sum() + (counts * (f_win - pooled_mean) ** 2).sum())
    var_f = pooled_ss / max(pooled_n - 1.0, 1.0)
    if var_f <= 0 or float(np.ptp(f_lab)) == 0.0:
        return 0.0
    return min(max(cov / ((1.0 + n / big_n) * var_f), 0.0), 1.0)


def _left_out_weights(
    y: FloatArray, f_lab: FloatArray, w: FloatArray, counts: FloatArray, f_win: FloatArray
) -> FloatArray:
    """Each label's tuned weight from the other labels (PPI++'s formula, clipped to [0, 1])."""
    n, big_n = float(y.size), float(counts.sum())
    if y.size < MIN_ITEMS:
        return np.zeros(y.size)
    rest_w = w.sum() - w
    y_bar = ((w * y).sum() - w * y) / rest_w
    f_bar = ((w * f_lab).sum() - w * f_lab) / rest_w
    cov = ((w * y * f_lab).sum() - w * y * f_lab) / rest_w - y_bar * f_bar
    var_lab = ((w * f_lab**2).sum() - w * f_lab**2) / rest_w - f_bar**2
    pooled_n = n - 1.0 + big_n
    s1 = f_lab.sum() - f_lab + (counts * f_win).sum()
    s2 = (f_lab**2).sum() - f_lab**2 + (counts * f_win**2).sum()
    var_f = (s2 - s1**2 / pooled_n) / max(pooled_n - 1.0, 1.0)
    defined = (var_f > TINY) & (var_lab > TINY)
    lam = np.where(defined, cov / ((1.0 + (n - 1.0) / big_n) * np.where(defined, var_f, 1.0)), 0.0)
    return np.asarray(np.clip(lam, 0.0, 1.0), dtype=np.float64)


def _effective_size(theta: float, variance: float, kish_n: float, max_gain: float, big_n: float) -> float:
    """The binomial size with this variance, capped at `max_gain` x the labels and at N."""
    spread = max(theta * (1 - theta), 1.0 / (4 * kish_n * max_gain))
    cap = max(min(max_gain * kish_n, big_n), kish_n)
    return min(spread / variance if variance > 0 else math.inf, cap)
