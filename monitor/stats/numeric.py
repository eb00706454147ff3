"""Drift of a numeric signal: two-sample Kolmogorov-Smirnov, Wasserstein, PSI, Jensen-Shannon.

The reference (baseline) window is prepared once — sorted, binned, summarised — into a
:class:`NumericReference` that the daemon reuses every cycle; each comparison then only
sorts the current window and locates it in the reference with ``np.searchsorted``.
Non-finite values (NaN, ±inf) are dropped on both sides before anything is computed.
"""

from __future__ import annotations

import functools
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

#: Elements per block where a computation runs block by block to stay in cache.
_BLOCK = 1 << 16

#: Sorted keys per block when locating them in the reference (see :func:`_search_sorted_keys`).
_BLOCK_KEYS = 4096

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
    """Where the sorted current values sit in the sorted reference (computed once per comparison).

    Per run of equal current values when the window has many ties (``start`` = index of
    each run's first value), else per value (``start`` None): ``right`` / ``left`` = number
    of reference values ``<=`` / ``<`` it (the same array when no value occurs in both).
    """

    start: npt.NDArray[np.intp] | None
    right: npt.NDArray[np.intp]
    left: npt.NDArray[np.intp]


def _search_sorted_keys(ref: FloatArray, keys: FloatArray) -> npt.NDArray[np.intp]:
    """``ref.searchsorted(keys, "right")`` for sorted keys, block by block.

    A block's keys all lie between the previous block's last key and its own last key, so
    they are searched in that slice of the reference only: a few bisection steps fewer
    per key than over the whole reference (about a fifth less time for a million keys).
    """
    if keys.size <= 2 * _BLOCK_KEYS:
        return ref.searchsorted(keys, "right")
    bounds = ref.searchsorted(keys[_BLOCK_KEYS - 1 :: _BLOCK_KEYS], "right")
    out = np.empty(keys.size, dtype=np.intp)
    lo = 0
    for block, first in enumerate(range(0, keys.size, _BLOCK_KEYS)):
        hi = int(bounds[block]) if block < bounds.size else ref.size
        np.add(
            ref[lo:hi].searchsorted(keys[first : first + _BLOCK_KEYS], "right"),
            lo,
            out=out[first : first + _BLOCK_KEYS],
        )
        lo = hi
    return out


def _locate(reference: NumericReference, sample: NumericSample) -> _Located:
    ref = reference.values
    cur = sample.values
    new_value = cur[1:] != cur[:-1]
    runs = int(np.count_nonzero(new_value)) + 1
    if 4 * runs <= 3 * cur.size:  # tied values (counts, rounded numbers): search each value once
        start = np.flatnonzero(new_value)
        start += 1
        start = np.concatenate(([0], start))
        values = cur[start]
        return _Located(start, ref.searchsorted(values, "right"), ref.searchsorted(values, "left"))
    del new_value
    right = _search_sorted_keys(ref, cur)
    # left == right unless the value itself occurs in the reference, i.e. unless the
    # largest reference value <= it equals it: look those up only (continuous signals
    # have few such ties, so this saves a second full search). mode="clip" reads ref[0]
    # for right == 0, which is then > the value, so no false tie.
    below = right - 1
    tied = np.take(ref, below, mode="clip") == cur
    del below
    if bool(tied.any()):
        left = right.copy()
        left[tied] = ref.searchsorted(cur[tied], "left")
    else:
        left = right
    return _Located(None, right, left)


@functools.lru_cache(maxsize=2)
def _steps(n: int) -> FloatArray:
    """``k / n`` for k = 0..n as SciPy computes them (integer count / n), read-only and shared.

    Every column of one window has the same n, so the comparison divides once, not per column.
    """
    grid = np.arange(n + 1, dtype=np.float64)
    grid /= n
    grid.flags.writeable = False
    return grid


def _ks_statistic(reference: NumericReference, sample: NumericSample, located: _Located) -> float:
    r"""``D = sup_x |F_ref(x) - F_cur(x)|`` evaluated exactly as ``ks_2samp`` does, in O(m log n).

    SciPy evaluates ``cdf1 - cdf2`` at every pooled value (``cdf = #values <= v / size``)
    and takes ``D = max(max(cdf1 - cdf2), clip(-min(cdf1 - cdf2), 0, 1))``. With the
    current values sorted, :math:`b_0 \le \dots \le b_{m-1}`, and
    :math:`r_k` / :math:`l_k` the number of reference values :math:`\le` / :math:`<`
    :math:`b_k`, both extremes are reached at candidates computed from these counts alone:

    * :math:`\min (F_\text{ref} - F_\text{cur})` is reached at a current value (to
      the right of a reference value the difference only grows until the next current
      value), where it is :math:`r_k/n - (k'+1)/m` with :math:`k'` the last index of
      :math:`b_k`'s run of ties. For the other indices of a run,
      :math:`r_k/n - (k+1)/m` is larger (same :math:`r_k`, smaller *k*), so the minimum of
      :math:`r_k/n - (k+1)/m` over **all** k is SciPy's minimum, value for value.
    * :math:`\max (F_\text{ref} - F_\text{cur})` is reached at a reference value *v*
      (at a current value the difference just dropped) — the largest reference value
      below the first current value :math:`b_k > v` (between *v* and :math:`b_k` the
      reference CDF only grows while the current one stays at *k/m*). There it is
      exactly :math:`l_k/n - k/m`. Every such candidate is at most the true difference at
      the largest reference value below :math:`b_k` (the current CDF there is at most
      *k/m*), so their maximum is SciPy's maximum. Reference values above every current
      value give differences <= 0, which cannot decide *D* (the last pooled value gives 0).

    Within a run of tied current values the first candidate is the largest and the last
    the smallest, so with many ties only those are formed, one search per distinct value.
    Candidates that differ at all differ by at least 1/(n·m), far more than rounding, so
    the float candidates order as the exact ones, and the extremes found are SciPy's own
    float values (same integer counts, same division and subtraction): *D* is
    bit-for-bit SciPy's.
    """
    n1, n2 = reference.n, sample.n
    start, right, left = located
    if start is None:
        steps = _steps(n2)
        first, after = steps[:-1], steps[1:]  # k/m and (k+1)/m
    else:  # per run of ties: k at its first value, k'+1 after its last (the extremes in the run)
        end = np.empty_like(start)
        end[:-1] = start[1:]
        end[-1] = n2
        first, after = start / n2, end / n2
    cdf_ref = right / n1
    difference = np.subtract(cdf_ref, after, out=cdf_ref)  # at each current value
    min_s = min(max(-float(difference.min()), 0.0), 1.0)
    np.divide(left, n1, out=difference)
    np.subtract(difference, first, out=difference)  # just below each current value
    max_s = float(difference.max())
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


def _wasserstein(reference: NumericReference, sample: NumericSample) -> float:
    r"""W1 between the two empirical distributions from their quantile functions, in linear time.

    On the line, :math:`W_1 = \int |F_1 - F_2|\,dx = \int_0^1 |Q_1(u) - Q_2(u)|\,du`
    (Vallender 1974), and the empirical quantile functions are step functions with steps
    at multiples of 1/n1 and 1/n2 — a grid fixed by the sizes alone, so neither sample
    needs to be located in the other. With equal sizes this is
    :math:`\frac1n \sum_i |a_{(i)} - b_{(i)}|`. Otherwise let n1 >= n2 (W1 is symmetric),
    g = gcd, p = n1/g, q = n2/g and measure u in units of 1/lcm: quantile step *i* of the
    larger sample covers (iq, (i+1)q], step *j* of the smaller one (jp, (j+1)p], and as
    q <= p each *i* overlaps at most two *j*: ``j0 = iq // p`` for an integer length
    :math:`w_0 = \min((j_0+1)p, (i+1)q) - iq` and ``j0 + 1`` for the rest
    :math:`w_1 = q - w_0`. Weights are exact integers and every term is non-negative,
    so the sum has no cancellation; identical samples give exactly 0.
    """
    a = reference.values
    b = sample.values
    if a.size == b.size:
        difference = a - b
        np.abs(difference, out=difference)
        return float(difference.sum()) / a.size
    if a.size < b.size:
        a, b = b, a
    n1, n2 = a.size, b.size
    g = math.gcd(n1, n2)
    p, q = n1 // g, n2 // g
    total = 0.0
    # in blocks that stay in cache: a dozen temporaries of the full size would cost more in
    # page faults than in arithmetic
    for lo in range(0, n1, _BLOCK):
        i = np.arange(lo, min(lo + _BLOCK, n1), dtype=np.int64)
        start = i * q
        j0 = start // p
        w0 = j0 + 1
        w0 *= p  # end of the smaller sample's step j0
        np.minimum(w0, start + q, out=w0)
        w0 -= start  # in (0, q]
        weight = w0.astype(np.float64)
        difference = a[lo : lo + i.size] - b[j0]
        np.abs(difference, out=difference)
        # einsum, not np.dot: BLAS's threaded dot costs more in start-up than the sum itself
        total += float(np.einsum("i,i->", weight, difference))
        np.subtract(q, weight, out=weight)  # w1 = q - w0, in [0, q)
        j0 += 1
        np.minimum(j0, n2 - 1, out=j0)  # j0 + 1 == n2 only where w1 == 0
        np.subtract(a[lo : lo + i.size], b[j0], out=difference)
        np.abs(difference, out=difference)
        difference[weight == 0.0] = 0.0  # no overlap: keep an overflowing |a - b| out (0 * inf)
        total += float(np.einsum("i,i->", weight, difference))
    return total / (float(n1) * float(q))


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
    return _wasserstein(reference, sample) / reference.scale


def ks_and_wasserstein(reference: NumericReference, sample: NumericSample) -> tuple[KSResult, float]:
    """:func:`ks_test` and :func:`wasserstein_scaled` together, locating the sample in the reference once."""
    if sample.n == 0:
        raise ValueError("ks_and_wasserstein needs at least one finite current value")
    ks = _ks_test(reference, sample, _locate(reference, sample))
    return ks, _wasserstein(reference, sample) / reference.scale


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
