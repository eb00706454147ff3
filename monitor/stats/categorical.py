"""Drift of a categorical signal (tags, segments, product actions) from counts per category."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy import stats

from monitor.stats._common import FloatArray
from monitor.stats.divergence import js_distance_from_counts, psi_from_counts

__all__ = [
    "ChiSquareResult",
    "chi_square_test",
    "js_distance_categorical",
    "new_categories",
    "psi_categorical",
]


class ChiSquareResult(NamedTuple):
    """Pearson's chi-square statistic, its p-value and degrees of freedom."""

    statistic: float
    p_value: float
    dof: int


def _aligned(
    reference_counts: Mapping[str, float], current_counts: Mapping[str, float]
) -> tuple[FloatArray, FloatArray]:
    """Counts of both sides over the sorted union of categories, dropping those zero on both sides."""
    for name, counts in (("reference_counts", reference_counts), ("current_counts", current_counts)):
        for category, count in counts.items():
            if not (math.isfinite(count) and count >= 0):
                raise ValueError(f"{name}[{category!r}] must be a finite count >= 0, got {count!r}")
    categories = sorted(
        c
        for c in set(reference_counts) | set(current_counts)
        if reference_counts.get(c, 0) > 0 or current_counts.get(c, 0) > 0
    )
    ref = np.array([float(reference_counts.get(c, 0)) for c in categories], dtype=np.float64)
    cur = np.array([float(current_counts.get(c, 0)) for c in categories], dtype=np.float64)
    return ref, cur


def chi_square_test(
    reference_counts: Mapping[str, float], current_counts: Mapping[str, float]
) -> ChiSquareResult:
    r"""Pearson's chi-square test of homogeneity on the 2×k table (reference, current) × category.

    With observed counts :math:`O_{ij}`, expected :math:`E_{ij} = R_i C_j / T` and
    :math:`k-1` degrees of freedom,

    .. math:: X^2 = \sum_{ij} (O_{ij} - E_{ij})^2 / E_{ij}, \qquad p = P(\chi^2_{k-1} > X^2).

    Exactly ``scipy.stats.chi2_contingency(table)`` with its default ``correction=True``,
    which means Yates' continuity correction (each :math:`|O - E|` reduced by up to 0.5)
    is applied when there are exactly two categories (one degree of freedom), and only
    then. Categories with a zero count on both sides are dropped first; with a single
    category left the result is ``(0.0, 1.0, 0)`` as in SciPy. Raises ``ValueError`` if
    either side has no counts at all.

    References: K. Pearson (1900), Phil. Mag. 50:157-175; F. Yates (1934), "Contingency
    tables involving small numbers and the χ² test", JRSS Suppl. 1:217-235.
    """
    ref, cur = _aligned(reference_counts, current_counts)
    if not (ref.sum() > 0 and cur.sum() > 0):
        raise ValueError("chi_square_test needs counts on both sides")
    observed = np.vstack([ref, cur])
    dof = observed.shape[1] - 1
    if dof == 0:
        return ChiSquareResult(0.0, 1.0, 0)
    row = observed.sum(axis=1)
    col = observed.sum(axis=0)
    expected = np.outer(row, col) / observed.sum()
    if dof == 1:
        difference = expected - observed
        observed = observed + np.minimum(0.5, np.abs(difference)) * np.sign(difference)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return ChiSquareResult(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def js_distance_categorical(
    reference_counts: Mapping[str, float], current_counts: Mapping[str, float]
) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the category shares.

    See :func:`monitor.stats.divergence.js_distance_from_counts`. A category present on
    one side only counts fully (no smoothing needed).
    """
    return js_distance_from_counts(*_aligned(reference_counts, current_counts))


def psi_categorical(
    reference_counts: Mapping[str, float], current_counts: Mapping[str, float], smoothing: float = 1e-4
) -> float:
    """Population stability index between the category shares, with additive smoothing.

    See :func:`monitor.stats.divergence.psi_from_counts`; a category never seen in the
    reference gets the smoothing share there, so it weighs in heavily but finitely.
    """
    return psi_from_counts(*_aligned(reference_counts, current_counts), smoothing=smoothing)


def new_categories(
    reference_counts: Mapping[str, float], current_counts: Mapping[str, float]
) -> tuple[str, ...]:
    """Categories present in the current window but never in the reference, most frequent first."""
    fresh = [c for c, count in current_counts.items() if count > 0 and not reference_counts.get(c, 0) > 0]
    return tuple(sorted(fresh, key=lambda c: (-current_counts[c], c)))
