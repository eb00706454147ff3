"""Drift of a numeric signal: two-sample Kolmogorov-Smirnov, Wasserstein, PSI, Jensen-Shannon.

The reference (baseline) window is prepared once — sorted, binned, summarised — into a
:class:`NumericReference` that the daemon reuses every cycle; each comparison then only
sorts the current window and locates it in the reference with ``np.searchsorted``.
Non-finite values (NaN, ±inf) are dropped on both sides before anything is computed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitor.stats._common import FloatArray, as_1d_float, finite
from monitor.stats.divergence import js_distance_from_counts, psi_from_counts

try:  # the routine ks_2samp itself uses for its exact p-value
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _scipy_exact_2samp
except ImportError:  # pragma: no cover - a SciPy that moved it: fall back to ks_2samp below
    _scipy_exact_2samp = None

__all__ = [
    "KSResult",
    "NumericReference",
    "NumericSample",
    "bin_counts",
    "js_distance_numeric",
    "ks_and_wasserstein",
    "ks_p_value",
    "ks_test",
    "psi",
    "wasserstein_scaled",
]

#: ``ks_2samp(method="auto")`` computes the exact p-value when both samples have at most this many values.
KS_EXACT_MAX_N = 10_000


@dataclass(frozen=True, eq=False)
class NumericSample:
    """The finite values of one window, sorted ascending: sort the current window once, reuse it."""

    values: FloatArray

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> NumericSample:
        """Drop non-finite values and sort."""
        return cls(np.sort(finite(as_1d_float(values, "values"))))

    @property
    def n(self) -> int:
        return int(self.values.size)


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A baseline window prepared once for repeated comparisons.

    ``values`` are its finite values sorted ascending; ``edges`` the inner bin edges
    (reference quantiles by the inverted empirical CDF, so edges are observed values;
    deduplicated, so that tied data make fewer bins); ``counts``
    the reference's count per bin, where bin *i* holds ``edges[i-1] < x <= edges[i]``
    and the outer bins are open. ``scale`` is the spread Wasserstein distances are
    divided by: the (population) standard deviation; if that is 0, IQR/1.349; if that
    is 0 too (a constant reference), ``|mean|``; and 1.0 (the signal's own units) for a
    reference that is constantly 0. (Subnormal spreads count as 0.) Effects may still be
    ``inf`` when a nearly constant reference meets a very different window.
    """

    values: FloatArray
    edges: FloatArray
    counts: npt.NDArray[np.int64]
    mean: float
    std: float
    scale: float

    @property
    def n(self) -> int:
        return int(self.values.size)

    @classmethod
    def prepare(cls, values: npt.ArrayLike, bins: int = 10) -> NumericReference:
        """Sort the finite ``values`` and cut them into ``bins`` quantile bins (deciles by default).

        Raises ``ValueError`` if no finite value is left or ``bins < 1``.
        """
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        sample = NumericSample.from_values(values)
        if sample.n == 0:
            raise ValueError("a numeric reference needs at least one finite value")
        ordered = sample.values
        # Inverted-CDF quantiles k/bins, i.e. the ceil(n·k/bins)-th smallest value, in exact
        # integer arithmetic on the sorted values (no partition pass): edges are observed
        # values, so integer-valued signals get integer edges.
        n = ordered.size
        ranks = (n * np.arange(1, bins, dtype=np.int64) + bins - 1) // bins - 1
        edges = np.unique(ordered[ranks])
        counts = _counts_in_bins(ordered, edges)
        mean = float(ordered.mean())
        std = float(ordered.std())
        usable = sys.float_info.min  # a subnormal spread is no spread
        scale = std
        if not scale >= usable:
            q1, q3 = np.quantile(ordered, [0.25, 0.75])
            scale = float(q3 - q1) / 1.349
        if not scale >= usable:
            scale = abs(mean) if abs(mean) >= usable else 1.0
        return cls(values=ordered, edges=edges, counts=counts, mean=mean, std=std, scale=scale)


class KSResult(NamedTuple):
    """Two-sample Kolmogorov-Smirnov statistic *D* and its p-value."""

    statistic: float
    p_value: float


def _as_sample(current: npt.ArrayLike | NumericSample) -> NumericSample:
    return current if isinstance(current, NumericSample) else NumericSample.from_values(current)


def _counts_in_bins(ordered: FloatArray, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Counts of sorted values per bin ``(edges[i-1], edges[i]]``, via searchsorted on the edges."""
    cumulative = np.searchsorted(ordered, edges, side="right")
    bounds = np.concatenate(([0], cumulative, [ordered.size])).astype(np.int64)
    return np.diff(bounds)


def bin_counts(reference: NumericReference, current: npt.ArrayLike | NumericSample) -> npt.NDArray[np.int64]:
    """Counts of the current window's finite values in the reference's bins.

    Bins as in :class:`NumericReference`; feed these to :func:`psi_from_counts`, or
    aggregate the same edges in SQL and skip the raw values altogether.
    """
    return _counts_in_bins(_as_sample(current).values, reference.edges)


class _Located(NamedTuple):
    """Where each sorted current value sits in the sorted reference (computed once per comparison)."""

    right: npt.NDArray[np.intp]  # number of reference values <= it
    left: npt.NDArray[np.intp]  # number of reference values < it


def _locate(reference: NumericReference, sample: NumericSample) -> _Located:
    ref = reference.values
    cur = sample.values
    right = np.searchsorted(ref, cur, side="right")
    # left == right unless the value itself occurs in the reference: look those up only
    # (continuous signals have few such ties, so this saves a second full search).
    tied = right > 0
    tied &= ref[np.maximum(right - 1, 0)] == cur
    if bool(tied.any()):
        left = right.copy()
        left[tied] = np.searchsorted(ref, cur[tied], side="left")
    else:
        left = right
    return _Located(right, left)


def _ks_statistic(reference: NumericReference, sample: NumericSample, located: _Located) -> float:
    """``D = sup_x |F_ref(x) - F_cur(x)|`` evaluated exactly as ``ks_2samp`` does, in O(m log n).

    SciPy evaluates the difference of the two empirical CDFs at every pooled value. Its
    minimum is reached at a current value (the last of a run of ties); its maximum at the
    largest reference value below a current value. So it suffices to locate each current
    value in the sorted reference: ``right``/``left`` = number of reference values
    ``<=`` / ``<`` it. Every candidate is computed with the same integer counts and the
    same floating-point operations as SciPy, so ``D`` is bit-for-bit SciPy's.
    """
    cur = sample.values
    n1, n2 = reference.n, cur.size
    right, left = located
    position = np.arange(n2)
    last_of_run = np.empty(n2, dtype=bool)
    np.not_equal(cur[1:], cur[:-1], out=last_of_run[:-1])
    last_of_run[-1] = True
    at_current = right[last_of_run] / n1 - (position[last_of_run] + 1) / n2
    below_current = left / n1 - position / n2
    max_s = max(float(at_current.max()), float(below_current.max()))
    min_s = min(max(-float(at_current.min()), 0.0), 1.0)
    return min_s if min_s > max_s else max_s


def ks_test(reference: NumericReference, current: npt.ArrayLike | NumericSample) -> KSResult:
    r"""Two-sample Kolmogorov-Smirnov test, identical to ``scipy.stats.ks_2samp(ref, cur)``.

    .. math:: D = \sup_x |F_\text{ref}(x) - F_\text{cur}(x)|

    p-value as ``ks_2samp(method="auto")`` computes it, and said here rather than hidden:
    when both samples have at most 10,000 values it is **exact** (Hodges' lattice-path
    count; *D* is then rounded to a multiple of 1/lcm(m, n), as SciPy does); otherwise
    (or if the exact computation overflows) it is the **asymptotic**
    ``kstwo.sf(D, round(m·n/(m+n)))``. Unlike SciPy, a fallback from exact to asymptotic
    does not emit a ``RuntimeWarning``. The reference is never re-sorted: only the current
    window is sorted (pass a :class:`NumericSample` to reuse one).

    Raises ``ValueError`` if the current window has no finite value.

    References: N. Smirnov (1939), Bull. Moscow Univ. 2:3-16; J. L. Hodges (1958), "The
    significance probability of the Smirnov two-sample test", Arkiv för Matematik
    3:469-486.
    """
    sample = _as_sample(current)
    if sample.n == 0:
        raise ValueError("ks_test needs at least one finite current value")
    return _ks_test(reference, sample, _locate(reference, sample))


def _ks_test(reference: NumericReference, sample: NumericSample, located: _Located) -> KSResult:
    d = _ks_statistic(reference, sample, located)
    n1, n2 = reference.n, sample.n
    if max(n1, n2) <= KS_EXACT_MAX_N and _scipy_exact_2samp is None:  # pragma: no cover
        result = stats.ks_2samp(reference.values, sample.values)  # only on a SciPy without the routine
        return KSResult(float(result.statistic), float(result.pvalue))
    return ks_p_value(d, n1, n2)


def ks_p_value(statistic: float, n1: int, n2: int) -> KSResult:
    """The two-sided p-value ``ks_2samp(method="auto")`` attaches to a KS statistic *D* for sizes n1, n2.

    Exact (Hodges) when ``max(n1, n2) <= 10,000`` — *D* is then rounded to a multiple of
    1/lcm(n1, n2) and returned as rounded, as SciPy does — else, or if the exact count
    overflows, asymptotic: ``kstwo.sf(D, round(n1·n2/(n1+n2)))``. This evaluation is
    what SciPy spends most of its KS time on for large, slightly shifted samples.
    """
    d = float(statistic)
    if max(n1, n2) <= KS_EXACT_MAX_N and _scipy_exact_2samp is not None:
        success, d, prob = _scipy_exact_2samp(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if success:
            return KSResult(float(d), min(max(float(prob), 0.0), 1.0))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    effective_n = m * n / (m + n)
    prob = float(stats.kstwo.sf(d, np.round(effective_n)))
    return KSResult(float(d), min(max(prob, 0.0), 1.0))


def _wasserstein(reference: NumericReference, sample: NumericSample, located: _Located) -> float:
    r"""W1 between the two empirical distributions, merging the sorted samples in linear time.

    Over the merged sorted values :math:`m_0 \le \dots \le m_{N-1}` (N = n1 + n2), with
    :math:`c_p` the number of current values among the first p + 1,
    :math:`|F_1 - F_2| = |n_2 (p+1) - N c_p| / (n_1 n_2)` on :math:`[m_p, m_{p+1})`: the
    numerator is an exact integer, so only the final sum is rounded.
    """
    ref = reference.values
    cur = sample.values
    n1, n2 = ref.size, cur.size
    total = n1 + n2
    # Where each current value lands in the stable merge of (reference, current): after
    # every reference value <= it and after the current values before it.
    landing = located.right + np.arange(n2)
    is_current = np.zeros(total, dtype=bool)
    is_current[landing] = True
    merged = np.empty(total, dtype=np.float64)
    merged[landing] = cur
    merged[~is_current] = ref
    gap = np.cumsum(is_current[:-1], dtype=np.int64)
    gap *= -total
    gap += np.arange(n2, n2 * total, n2, dtype=np.int64)
    np.abs(gap, out=gap)
    # einsum, not np.dot: BLAS's threaded dot costs more in start-up than the sum itself
    return float(np.einsum("i,i->", gap, np.diff(merged))) / (float(n1) * float(n2))


def wasserstein_scaled(reference: NumericReference, current: npt.ArrayLike | NumericSample) -> float:
    r"""First Wasserstein (earth mover's) distance divided by the reference's spread.

    .. math:: W_1 = \int_{-\infty}^{\infty} |F_\text{ref}(x) - F_\text{cur}(x)|\,dx,
              \qquad \text{effect} = W_1 / \text{reference.scale}

    so 0.1 means "the distribution moved by a tenth of a baseline standard deviation"
    (for a pure location shift of a normal, :math:`W_1/\sigma` is the shift in
    standard deviations, i.e. Cohen's d). Equal to
    ``scipy.stats.wasserstein_distance(ref, cur) / reference.scale``.
    Raises ``ValueError`` if the current window has no finite value.

    Reference: S. S. Vallender (1974), "Calculation of the Wasserstein distance between
    probability distributions on the line", Theory Probab. Appl. 18:784-786.
    """
    sample = _as_sample(current)
    if sample.n == 0:
        raise ValueError("wasserstein_scaled needs at least one finite current value")
    return _wasserstein(reference, sample, _locate(reference, sample)) / reference.scale


def ks_and_wasserstein(reference: NumericReference, sample: NumericSample) -> tuple[KSResult, float]:
    """:func:`ks_test` and :func:`wasserstein_scaled` together, locating the sample in the reference once."""
    if sample.n == 0:
        raise ValueError("ks_and_wasserstein needs at least one finite current value")
    located = _locate(reference, sample)
    return _ks_test(reference, sample, located), _wasserstein(reference, sample, located) / reference.scale


def psi(
    reference: NumericReference, current: npt.ArrayLike | NumericSample, smoothing: float = 1e-4
) -> float:
    """Population stability index over the reference's quantile bins.

    See :func:`monitor.stats.divergence.psi_from_counts` for the formula and the additive
    smoothing of empty bins (``smoothing`` is a share added to every bin before
    renormalising).
    """
    return psi_from_counts(reference.counts, bin_counts(reference, current), smoothing)


def js_distance_numeric(reference: NumericReference, current: npt.ArrayLike | NumericSample) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) over the reference's quantile bins.

    See :func:`monitor.stats.divergence.js_distance_from_counts` for the formula.
    """
    return js_distance_from_counts(reference.counts, bin_counts(reference, current))
