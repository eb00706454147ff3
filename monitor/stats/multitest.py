"""Multiple-testing control: many signals and segments per cycle make many tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["benjamini_hochberg"]


def benjamini_hochberg(
    p_values: Sequence[float] | npt.ArrayLike, alpha: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    r"""Benjamini-Hochberg step-up procedure controlling the false discovery rate at ``alpha``.

    With the *m* p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`, reject the
    hypotheses of :math:`p_{(1)},\dots,p_{(k)}` for the largest *k* with
    :math:`p_{(k)} \le k\alpha/m`. Adjusted p-values are
    :math:`\tilde p_{(i)} = \min_{j \ge i} \min(1, m\,p_{(j)}/j)`, so that
    ``rejected == (adjusted <= alpha)``. Returns ``(rejected, adjusted)`` in the input
    order; identical to ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``.

    Reference: Y. Benjamini, Y. Hochberg (1995), "Controlling the false discovery rate: a
    practical and powerful approach to multiple testing", JRSS B 57:289-300.
    """
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return np.zeros(0, dtype=np.bool_), np.zeros(0, dtype=np.float64)
    if not bool(np.all((p >= 0.0) & (p <= 1.0))):
        raise ValueError("p-values must be in [0, 1] (and not NaN)")
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    factor = np.arange(1, m + 1) / m
    below = ranked <= factor * alpha
    rejected_sorted = np.zeros(m, dtype=np.bool_)
    if bool(below.any()):
        rejected_sorted[: int(np.nonzero(below)[0].max()) + 1] = True
    adjusted_sorted = np.minimum(np.minimum.accumulate((ranked / factor)[::-1])[::-1], 1.0)
    rejected = np.empty(m, dtype=np.bool_)
    adjusted = np.empty(m, dtype=np.float64)
    rejected[order] = rejected_sorted
    adjusted[order] = adjusted_sorted
    return rejected, adjusted
