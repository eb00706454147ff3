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

The arithmetic is monitor.stats.ppi.covariate_powered_pass_rate's, the one estimator for every
covariate known on the whole window (judge verdicts and actions alike): each action is a cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.stats.intervals import Estimate
from monitor.stats.ppi import covariate_powered_pass_rate

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
    """The window's pass rate from human verdicts and the users' actions (cells of the window)."""
    return covariate_powered_pass_rate(
        verdicts,
        inclusion_prob,
        labelled_proxy,
        window_proxy_counts,
        prediction,
        confidence,
        max_gain,
        power,
        method="ppi-actions",
    ).estimate
