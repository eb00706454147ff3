"""A pass rate from a few human labels and a proxy seen on every output (what users did with it).

Prediction-powered inference (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, "Prediction-
powered inference", Science 382) with the power tuning of PPI++ (Angelopoulos, Duchi & Zrnic
2023, arXiv:2311.01453). Let f(a) be a fixed prediction of "passes" from the user's action a
(the baseline's pass rate per action), N outputs in the window with actions a_1..a_N, and n
of them labelled by humans with verdicts y_j and design weights w_j = 1/pi_j. Then

    theta = lambda * mean_N f(a_i) + sum_j w_j (y_j - lambda f(a_j)) / sum_j w_j

is unbiased for the window's pass rate for any fixed lambda, whatever the relation between
actions and quality (the human residuals correct the proxy), with variance

    Var = lambda^2 Var_N(f) / N + Var_w(y - lambda f) / n_eff,   n_eff = (sum w)^2 / sum w^2.

lambda = Cov(y, f) / ((1 + n_eff / N) Var(f)), clipped to [0, 1], minimises it; with a useless
proxy lambda -> 0 and the estimate is the plain weighted one. The interval is Wilson's on the
effective size n* = theta (1 - theta) / Var, capped at `max_gain` times the labels, so that a
proxy that happens to agree perfectly on a small sample cannot claim unlimited precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from monitor.stats.intervals import Estimate, weighted_pass_rate, wilson_interval

__all__ = ["proxy_powered_pass_rate"]


def proxy_powered_pass_rate(
    verdicts: Sequence[float],
    inclusion_prob: Sequence[float],
    labelled_proxy: Sequence[str],
    window_proxy_counts: Mapping[str, int],
    prediction: Mapping[str, float],
    confidence: float = 0.95,
    max_gain: float = 4.0,
    power: float | None = None,
) -> Estimate:
    y = np.asarray(verdicts, dtype=float)
    w = 1.0 / np.asarray(inclusion_prob, dtype=float)
    fallback = float(np.average(list(prediction.values()))) if prediction else 0.5
    f_lab = np.array([prediction.get(a, fallback) for a in labelled_proxy], dtype=float)
    names = list(window_proxy_counts)
    counts = np.array([window_proxy_counts[a] for a in names], dtype=float)
    f_win = np.array([prediction.get(a, fallback) for a in names], dtype=float)
    big_n = float(counts.sum())
    plain = weighted_pass_rate(y, 1.0 / w, None, confidence)
    if big_n <= 0 or y.size == 0:
        return plain
    weight_sum = float(w.sum())
    n_eff = weight_sum**2 / float((w**2).sum())
    mean_f_all = float((counts * f_win).sum() / big_n)
    var_f_all = float((counts * (f_win - mean_f_all) ** 2).sum() / big_n)
    y_bar = float((w * y).sum() / weight_sum)
    f_bar = float((w * f_lab).sum() / weight_sum)
    var_f_lab = float((w * (f_lab - f_bar) ** 2).sum() / weight_sum)
    cov = float((w * (y - y_bar) * (f_lab - f_bar)).sum() / weight_sum)
    lam = (
        power
        if power is not None
        else (0.0 if var_f_lab <= 0 else min(1.0, max(0.0, cov / ((1 + n_eff / big_n) * var_f_lab))))
    )
    residual = y - lam * f_lab
    r_bar = float((w * residual).sum() / weight_sum)
    var_r = float((w * (residual - r_bar) ** 2).sum() / weight_sum) * n_eff / max(n_eff - 1.0, 1.0)
    theta = min(1.0, max(0.0, lam * mean_f_all + r_bar))
    variance = lam**2 * var_f_all / big_n + var_r / n_eff
    if lam == 0.0:
        return plain
    spread = max(theta * (1 - theta), 1.0 / (4 * n_eff * max_gain))
    effective = min(spread / variance if variance > 0 else np.inf, max_gain * n_eff, big_n)
    effective = max(effective, n_eff)
    interval = wilson_interval(theta * effective, effective, confidence)
    return Estimate(theta, interval.low, interval.high, effective, "ppi-actions", confidence)
