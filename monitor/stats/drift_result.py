"""Drift verdicts: significance (after Benjamini-Hochberg) AND an effect size worth acting on.

With 100,000 outputs a week every p-value is tiny, so significance alone cries wolf;
with 30 outputs a week every effect size is noisy, so an effect size alone cries wolf
too. A signal is declared drifted only when both hold:

1. its *primary* test (Kolmogorov-Smirnov for numbers, chi-square for categories) is
   significant after the Benjamini-Hochberg correction over every primary test of the
   same comparison (one cycle: all signals and tags together), at ``alpha``; and
2. its effect size reaches the threshold: Wasserstein distance over the baseline's
   spread for numbers, Jensen-Shannon distance for categories.

Secondary entries (``psi``, ``js``, ``wasserstein``) carry no p-value of their own. Their
verdict is their effect size against its threshold, **gated by the primary test of the
same signal**: a secondary entry is ``drifted`` only if its effect reaches its threshold
and the signal's primary test was significant after BH. (Effect sizes alone are biased
upwards in small samples: under no drift at all, decile PSI is about (bins-1)·(1/m+1/n),
0.3 for a 30-output week, so an ungated PSI verdict would page someone every quiet week.)

Signals that cannot be tested — a side with fewer than :data:`MIN_SAMPLES` values, a
signal missing on one side — are still reported, with ``statistic``/``effect`` NaN
(``null`` in JSON), ``p_value`` None and ``drifted`` False, so that a signal that
vanishes is visible rather than silently skipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from monitor.stats.categorical import (
    chi_square_test,
    js_distance_categorical,
    new_categories,
    psi_categorical,
)
from monitor.stats.divergence import js_distance_from_counts, psi_from_counts
from monitor.stats.multitest import benjamini_hochberg
from monitor.stats.numeric import (
    NumericReference,
    NumericSample,
    bin_counts,
    ks_and_wasserstein,
)

__all__ = [
    "MIN_SAMPLES",
    "DriftMeasurement",
    "DriftResult",
    "DriftThresholds",
    "benjamini_hochberg",
    "compare_categorical",
    "compare_numeric",
    "decide",
    "untested",
]

Kind = Literal["numeric", "categorical"]

#: A side with fewer values than this is not tested (reported with p_value None, drifted False).
MIN_SAMPLES = 2


@dataclass(frozen=True)
class DriftThresholds:
    """When a difference is a drift: the false-discovery budget and the smallest effects worth a look.

    No defaults here: the one place they are set, and argued, is the configuration's
    ``DriftSettings`` (``monitor.config``); ``monitor.decide.drift.thresholds_of`` builds these
    from it, for the daemon and for ``aiqm drift`` alike.

    ``alpha``: Benjamini-Hochberg false discovery rate over all primary tests of one
    comparison. When nothing drifts, BH also bounds the chance of *any* alarm in that
    comparison by ``alpha``.

    ``numeric_effect``: Wasserstein-1 distance over the baseline's standard deviation. For a
    location shift it is the shift in baseline standard deviations (Cohen's d).

    ``categorical_effect``: Jensen-Shannon distance (base 2) between category shares, also
    used for every ``js`` entry.

    ``psi_effect``: population stability index of a secondary ``psi`` entry.
    """

    alpha: float
    numeric_effect: float
    categorical_effect: float
    psi_effect: float

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        for name in ("numeric_effect", "categorical_effect", "psi_effect"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def for_test(self, test: str) -> float:
        """The effect threshold that applies to entries of ``test``."""
        if test in ("ks", "wasserstein"):
            return self.numeric_effect
        if test in ("chi2", "js"):
            return self.categorical_effect
        if test == "psi":
            return self.psi_effect
        raise ValueError(f"no effect threshold for test {test!r}")


@dataclass(frozen=True)
class DriftMeasurement:
    """One test or effect size on one signal, before the verdict (see :func:`decide`)."""

    signal: str
    kind: Kind
    test: str
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str
    n_reference: int
    n_current: int
    primary: bool
    new_categories: tuple[str, ...] = ()


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class DriftResult:
    """A drift measurement with its verdict; ``to_json()`` gives CONTRACT section 5's entry.

    ``p_value_adjusted`` is the Benjamini-Hochberg adjusted p-value of a primary test (None
    for secondary and untested entries). ``statistic`` and ``effect`` are NaN where the
    signal could not be tested; ``to_json`` writes them as ``null``.
    """

    signal: str
    kind: Kind
    test: str
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str
    drifted: bool
    n_reference: int
    n_current: int
    new_categories: tuple[str, ...] = ()
    p_value_adjusted: float | None = None
    primary: bool = True

    def to_json(self) -> dict[str, Any]:
        """``signal, kind, test, statistic, p_value, effect, drifted`` plus extras; NaN becomes null."""
        return {
            "signal": self.signal,
            "kind": self.kind,
            "test": self.test,
            "statistic": _json_number(self.statistic),
            "p_value": _json_number(self.p_value),
            "effect": _json_number(self.effect),
            "drifted": self.drifted,
            "effect_name": self.effect_name,
            "p_value_adjusted": _json_number(self.p_value_adjusted),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "new_categories": list(self.new_categories),
            "primary": self.primary,
        }


def untested(
    signal: str, kind: Kind, n_reference: int, n_current: int, new: tuple[str, ...] = ()
) -> DriftMeasurement:
    """The primary entry of a signal that cannot be tested (too few values on a side)."""
    test, effect_name = ("ks", "wasserstein_scaled") if kind == "numeric" else ("chi2", "js_distance")
    return DriftMeasurement(
        signal=signal,
        kind=kind,
        test=test,
        statistic=math.nan,
        p_value=None,
        effect=math.nan,
        effect_name=effect_name,
        n_reference=n_reference,
        n_current=n_current,
        primary=True,
        new_categories=new,
    )


def compare_numeric(
    signal: str, reference: NumericReference, current: npt.ArrayLike | NumericSample
) -> list[DriftMeasurement]:
    """Measure drift of one numeric signal against its prepared reference.

    Entries: ``ks`` (primary: KS statistic *D*, its p-value exactly as ``ks_2samp``,
    effect = Wasserstein-1 / reference scale), then ``wasserstein`` (same effect),
    ``psi`` (decile PSI) and ``js`` (decile Jensen-Shannon distance), secondaries without
    p-values. Non-finite current values are dropped; with fewer than
    :data:`MIN_SAMPLES` values on either side only an untested ``ks`` entry is returned.
    """
    sample = current if isinstance(current, NumericSample) else NumericSample.from_values(current)
    n_ref, n_cur = reference.n, sample.n
    if n_ref < MIN_SAMPLES or n_cur < MIN_SAMPLES:
        return [untested(signal, "numeric", n_ref, n_cur)]
    ks, effect = ks_and_wasserstein(reference, sample)
    counts = bin_counts(reference, sample)
    psi_value = psi_from_counts(reference.counts, counts)
    js_value = js_distance_from_counts(reference.counts, counts)

    return _measurements(
        signal,
        "numeric",
        n_ref,
        n_cur,
        [
            ("ks", ks.statistic, ks.p_value, effect, "wasserstein_scaled"),
            ("wasserstein", effect, None, effect, "wasserstein_scaled"),
            ("psi", psi_value, None, psi_value, "psi"),
            ("js", js_value, None, js_value, "js_distance"),
        ],
    )


PARALLEL_VALUES = 200_000
"""Below this many current values in all, numeric columns are compared one after another."""


def compare_numeric_columns(
    columns: Sequence[tuple[str, NumericReference, npt.ArrayLike | NumericSample]],
    workers: int | None = None,
) -> list[DriftMeasurement]:
    """`compare_numeric` for several columns, in their order, on a small thread pool for big windows.

    The work per column is mostly numpy sorting and searching, which releases the GIL, so a
    second core sorts the next column while SciPy's KS p-value (which holds the GIL) runs for
    this one. Results are identical to calling `compare_numeric` column by column.
    """
    total = sum(
        values.n if isinstance(values, NumericSample) else int(np.size(values)) for _, _, values in columns
    )
    threads = min(len(columns), workers if workers is not None else (os.cpu_count() or 1), 4)
    if threads <= 1 or total < PARALLEL_VALUES:
        return [m for name, reference, values in columns for m in compare_numeric(name, reference, values)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aiqm-drift") as pool:
        parts = list(pool.map(lambda column: compare_numeric(*column), columns))
    return [m for part in parts for m in part]


def compare_categorical(
    signal: str, reference_counts: Mapping[str, float], current_counts: Mapping[str, float]
) -> list[DriftMeasurement]:
    """Measure drift of one categorical signal from its counts per category.

    Entries: ``chi2`` (primary: chi-square statistic and p-value as
    ``scipy.stats.chi2_contingency``, effect = Jensen-Shannon distance), then ``js`` and
    ``psi`` secondaries. Categories present now but never in the reference are listed
    by name in ``new_categories`` of every entry. With fewer than :data:`MIN_SAMPLES`
    counts on either side only an untested ``chi2`` entry is returned (still naming new
    categories).
    """
    n_ref = round(sum(float(v) for v in reference_counts.values()))
    n_cur = round(sum(float(v) for v in current_counts.values()))
    fresh = new_categories(reference_counts, current_counts)
    if n_ref < MIN_SAMPLES or n_cur < MIN_SAMPLES:
        return [untested(signal, "categorical", n_ref, n_cur, fresh)]
    chi2 = chi_square_test(reference_counts, current_counts)
    js_value = js_distance_categorical(reference_counts, current_counts)
    psi_value = psi_categorical(reference_counts, current_counts)

    return _measurements(
        signal,
        "categorical",
        n_ref,
        n_cur,
        [
            ("chi2", chi2.statistic, chi2.p_value, js_value, "js_distance"),
            ("js", js_value, None, js_value, "js_distance"),
            ("psi", psi_value, None, psi_value, "psi"),
        ],
        fresh,
    )


def _measurements(
    signal: str,
    kind: Kind,
    n_ref: int,
    n_cur: int,
    rows: Sequence[tuple[str, float, float | None, float, str]],
    fresh: tuple[str, ...] = (),
) -> list[DriftMeasurement]:
    """One signal's entries from (test, statistic, p-value, effect, effect name); the first is primary."""
    return [
        DriftMeasurement(
            signal=signal,
            kind=kind,
            test=test,
            statistic=statistic,
            p_value=p_value,
            effect=effect,
            effect_name=effect_name,
            n_reference=n_ref,
            n_current=n_cur,
            primary=index == 0,
            new_categories=fresh,
        )
        for index, (test, statistic, p_value, effect, effect_name) in enumerate(rows)
    ]


def decide(measurements: Sequence[DriftMeasurement], thresholds: DriftThresholds) -> list[DriftResult]:
    """Turn one comparison's measurements into verdicts (order kept).

    Benjamini-Hochberg runs once over the p-values of all primary entries; a primary entry
    is drifted iff BH rejects it and its effect >= its threshold; a secondary entry iff
    its signal's primary was rejected by BH and its own effect >= its threshold; an
    untested entry never is. See the module docstring for why.
    """
    tested = [i for i, m in enumerate(measurements) if m.primary and m.p_value is not None]
    p_values = np.array([measurements[i].p_value for i in tested], dtype=np.float64)
    rejected, adjusted = benjamini_hochberg(p_values, thresholds.alpha)
    significant: dict[tuple[str, str], bool] = {}
    adjusted_by_index: dict[int, float] = {}
    for position, index in enumerate(tested):
        m = measurements[index]
        significant[(m.kind, m.signal)] = bool(rejected[position])
        adjusted_by_index[index] = float(adjusted[position])
    results: list[DriftResult] = []
    for index, m in enumerate(measurements):
        big_enough = not math.isnan(m.effect) and m.effect >= thresholds.for_test(m.test)
        drifted = big_enough and significant.get((m.kind, m.signal), False)
        results.append(
            DriftResult(
                signal=m.signal,
                kind=m.kind,
                test=m.test,
                statistic=m.statistic,
                p_value=m.p_value,
                effect=m.effect,
                effect_name=m.effect_name,
                drifted=drifted,
                n_reference=m.n_reference,
                n_current=m.n_current,
                new_categories=m.new_categories,
                p_value_adjusted=adjusted_by_index.get(index),
                primary=m.primary,
            )
        )
    return results
