"""Agreement between two raters (a judge and a human, or two humans) beyond chance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.stats._common import z_value

__all__ = ["Agreement", "cohens_kappa"]


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa with its asymptotic standard error and confidence interval.

    ``kappa``, ``std_error``, ``low`` and ``high`` are NaN when kappa is undefined (both
    raters used one and the same category for every item, so chance agreement is 1);
    ``raw_agreement`` is the observed share of items on which the raters agree.
    """

    kappa: float
    low: float
    high: float
    raw_agreement: float
    n: int
    std_error: float
    confidence: float


def cohens_kappa(a: Sequence[str], b: Sequence[str], confidence: float = 0.95) -> Agreement:
    r"""Cohen's kappa for two raters' labels of the same items, with a large-sample interval.

    From the k×k table of proportions :math:`p_{ij}` with margins :math:`p_{i\cdot}`,
    :math:`p_{\cdot j}`: :math:`p_o = \sum_i p_{ii}`, :math:`p_e = \sum_i p_{i\cdot}p_{\cdot i}`,
    :math:`\kappa = (p_o - p_e)/(1 - p_e)`, and the asymptotic variance (not under H0)

    .. math::

        \operatorname{Var}\hat\kappa = \frac{A + B - C}{n(1-p_e)^2},\quad
        A = \sum_i p_{ii}\,[1 - (p_{i\cdot}+p_{\cdot i})(1-\kappa)]^2,\;
        B = (1-\kappa)^2\sum_{i\ne j} p_{ij}(p_{\cdot i}+p_{j\cdot})^2,\;
        C = [\kappa - p_e(1-\kappa)]^2,

    interval :math:`\hat\kappa \pm z_{1-\alpha/2}\sqrt{\operatorname{Var}\hat\kappa}`.
    Same numbers as ``statsmodels.stats.inter_rater.cohens_kappa`` and SAS PROC FREQ.
    When :math:`p_e = 1` (both raters gave every item the same single category) kappa
    is undefined and NaN is returned for it and its interval, without a warning.

    References: J. Cohen (1960), "A coefficient of agreement for nominal scales", Educational
    and Psychological Measurement 20:37-46; J. L. Fleiss, J. Cohen, B. S. Everitt (1969),
    "Large sample standard errors of kappa and weighted kappa", Psychological Bulletin
    72:323-327.
    """
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled different numbers of items ({len(a)} != {len(b)})")
    if len(a) == 0:
        raise ValueError("cohens_kappa needs at least one item")
    z = z_value(confidence)
    categories, codes = np.unique(np.asarray([*a, *b], dtype=object).astype(str), return_inverse=True)
    k = categories.size
    n = len(a)
    table = np.zeros((k, k), dtype=np.float64)
    np.add.at(table, (codes[:n], codes[n:]), 1.0)
    probs = table / n
    row = table.sum(axis=1) / n
    col = table.sum(axis=0) / n
    # from the integer counts, so that p_o and p_e are exact where they can be
    p_observed = float(np.trace(table)) / n
    p_expected = float(table.sum(axis=1) @ table.sum(axis=0)) / (n * n)
    if p_expected >= 1.0:
        nan = math.nan
        return Agreement(nan, nan, nan, p_observed, n, nan, confidence)
    kappa = (p_observed - p_expected) / (1.0 - p_expected)
    term_a = float(np.sum(np.diag(probs) * (1.0 - (row + col) * (1.0 - kappa)) ** 2))
    off_diagonal = probs * (col[:, None] + row[None, :]) ** 2
    np.fill_diagonal(off_diagonal, 0.0)
    term_b = (1.0 - kappa) ** 2 * float(off_diagonal.sum())
    term_c = (kappa - p_expected * (1.0 - kappa)) ** 2
    variance = (term_a + term_b - term_c) / (1.0 - p_expected) ** 2 / n
    std_error = math.sqrt(max(variance, 0.0))
    return Agreement(
        kappa=kappa,
        low=kappa - z * std_error,
        high=kappa + z * std_error,
        raw_agreement=p_observed,
        n=n,
        std_error=std_error,
        confidence=confidence,
    )
