"""Distances between two binned distributions given as counts (PSI, Jensen-Shannon).

These take counts, not raw values, so that histograms aggregated elsewhere (a SQL
``GROUP BY`` over the reference's bin edges, say) can be compared without the rows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from monitor.stats._common import FloatArray, as_1d_float

__all__ = ["js_distance_from_counts", "psi_from_counts"]


def _proportions(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    ref = as_1d_float(reference_counts, "reference_counts")
    cur = as_1d_float(current_counts, "current_counts")
    if ref.shape != cur.shape:
        raise ValueError(f"count vectors differ in length ({ref.size} != {cur.size})")
    for name, counts in (("reference_counts", ref), ("current_counts", cur)):
        if not bool(np.all(np.isfinite(counts))) or bool(np.any(counts < 0.0)):
            raise ValueError(f"{name} must be finite and non-negative")
        if not float(counts.sum()) > 0.0:
            raise ValueError(f"{name} sum to zero: nothing to compare")
    return ref / ref.sum(), cur / cur.sum()


def psi_from_counts(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, smoothing: float = 1e-4
) -> float:
    r"""Population stability index between two vectors of bin counts.

    With bin shares :math:`r_i` (reference) and :math:`c_i` (current) over *k* bins, each
    share is first smoothed additively, :math:`r'_i = (r_i + \varepsilon)/(1 + k\varepsilon)`
    (likewise :math:`c'_i`), so that an empty bin contributes a large but finite term
    instead of an infinite one, and then

    .. math:: \mathrm{PSI} = \sum_i (c'_i - r'_i)\,\ln(c'_i / r'_i).

    ``smoothing`` is :math:`\varepsilon`, a share (default 1e-4, i.e. 0.01 % of the
    sample). With ``smoothing=0`` a bin empty on exactly one side gives ``inf``. PSI is
    the symmetrised Kullback-Leibler divergence (Jeffreys' J) of the binned shares;
    common readings are < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift.

    References: B. Yurdakul (2018), "Statistical properties of population stability
    index", PhD dissertation, Western Michigan University; H. Jeffreys (1946), Proc. R.
    Soc. A 186:453-461.
    """
    if not (smoothing >= 0.0 and math.isfinite(smoothing)):
        raise ValueError(f"smoothing must be a finite share >= 0, got {smoothing!r}")
    ref, cur = _proportions(reference_counts, current_counts)
    k = ref.size
    ref = (ref + smoothing) / (1.0 + k * smoothing)
    cur = (cur + smoothing) / (1.0 + k * smoothing)
    if bool(np.any((ref > 0.0) != (cur > 0.0))):  # only possible with smoothing == 0
        return math.inf
    both = (ref > 0.0) & (cur > 0.0)
    ref, cur = ref[both], cur[both]
    return float(np.sum((cur - ref) * (np.log(cur) - np.log(ref))))


def js_distance_from_counts(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    r"""Jensen-Shannon distance (base 2, in [0, 1]) between two vectors of bin counts.

    With shares *r*, *c* and their mixture :math:`m = (r + c)/2`,

    .. math:: \mathrm{JS}(r, c) = \sqrt{\tfrac12 D_{KL}(r\,\|\,m) + \tfrac12 D_{KL}(c\,\|\,m)}

    with logarithms in base 2, so 0 means identical and 1 disjoint supports. Empty
    bins need no smoothing (:math:`0 \log 0 = 0`). Same value as
    ``scipy.spatial.distance.jensenshannon(r, c, base=2)``.

    Reference: J. Lin (1991), "Divergence measures based on the Shannon entropy", IEEE
    Trans. Inf. Theory 37:145-151; D. M. Endres, J. E. Schindelin (2003), "A new metric
    for probability distributions", IEEE Trans. Inf. Theory 49:1858-1860.
    """
    ref, cur = _proportions(reference_counts, current_counts)
    mixture = (ref + cur) / 2.0
    divergence = float(np.sum(special.rel_entr(ref, mixture)) + np.sum(special.rel_entr(cur, mixture)))
    divergence = divergence / 2.0 / math.log(2.0)
    return math.sqrt(min(max(divergence, 0.0), 1.0))
