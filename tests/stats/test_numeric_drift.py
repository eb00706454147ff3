"""Numeric drift: KS, Wasserstein, PSI and JS against SciPy, from a reference prepared once."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.stats import (
    NumericReference,
    NumericSample,
    js_distance_from_counts,
    js_distance_numeric,
    ks_test,
    psi,
    psi_from_counts,
    wasserstein_scaled,
)
from monitor.stats.numeric import (
    KS_EXACT_MAX_N,
    _search_sorted_keys,
    bin_counts,
    ks_and_wasserstein,
    ks_p_value,
)

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def _scipy_ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SciPy warns when exact falls back to asymp
        result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


# --------------------------------------------------------------------------- reference


def test_prepare_sorts_bins_and_summarises() -> None:
    values = np.random.default_rng(0).normal(5, 2, size=1000)
    reference = NumericReference.prepare(np.concatenate([values, [np.nan, np.inf]]))
    assert reference.n == 1000
    assert np.all(np.diff(reference.values) >= 0)
    assert reference.edges.size == 9
    assert reference.counts.sum() == 1000
    assert np.all(np.abs(reference.counts - 100) <= 1)
    assert reference.mean == pytest.approx(values.mean())
    assert reference.std == pytest.approx(values.std())
    assert reference.scale == reference.std


@pytest.mark.parametrize("bins", [2, 4, 10, 20])
def test_edges_are_exact_inverted_cdf_quantiles(bins: int) -> None:
    # the ceil(n·k/bins)-th smallest value, in integers (np.quantile's float k/bins can be one off)
    reference = NumericReference.prepare(np.arange(100.0)[::-1], bins=bins)
    step = 100 // bins
    assert reference.edges.tolist() == [float(step * k - 1) for k in range(1, bins)]
    assert reference.counts.tolist() == [step] * bins


def test_scale_falls_back_for_degenerate_references() -> None:
    assert NumericReference.prepare([3.0, 3.0, 3.0]).scale == 3.0  # constant: |mean|
    assert NumericReference.prepare([0.0, 0.0]).scale == 1.0  # constantly zero: own units
    assert NumericReference.prepare([-2.0]).scale == 2.0


def test_prepare_deduplicates_tied_edges() -> None:
    reference = NumericReference.prepare([0] * 90 + [1] * 10)
    assert list(reference.edges) == [0.0]
    assert list(reference.counts) == [90, 10]
    assert list(bin_counts(reference, [0, 0, 1, 5, -3])) == [3, 2]


@pytest.mark.parametrize("values", [[], [np.nan, np.inf]])
def test_prepare_rejects_empty(values: list[float]) -> None:
    with pytest.raises(ValueError):
        NumericReference.prepare(values)
    with pytest.raises(ValueError):
        NumericReference.prepare([1.0], bins=0)


# --------------------------------------------------------------------------- KS


@pytest.mark.parametrize(
    ("n1", "n2"),
    [(1, 1), (1, 9), (7, 7), (30, 45), (200, 150), (999, 1000), (10_000, 10_000), (10_000, 3), (10_001, 50)],
)
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_ks_matches_scipy_exact_and_asymptotic(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    reference = NumericReference.prepare(a)
    result = ks_test(reference, b)
    assert (result.statistic, result.p_value) == pytest.approx(_scipy_ks(a, b), rel=1e-9, abs=1e-12)
    assert max(n1, n2) <= KS_EXACT_MAX_N or n1 > KS_EXACT_MAX_N or n2 > KS_EXACT_MAX_N


@pytest.mark.parametrize(("n1", "n2"), [(50, 50), (40, 70), (20_000, 30_000)])
def test_ks_p_value_from_the_statistic_alone(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(0.1, size=n2)
    result = ks_test(NumericReference.prepare(a), b)
    assert ks_p_value(result.statistic, n1, n2) == result


def test_ks_matches_scipy_asymptotic_large() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.lognormal(size=60_000), rng.lognormal(0.01, size=25_000)
    result = ks_test(NumericReference.prepare(a), b)
    assert tuple(result) == _scipy_ks(a, b)


@pytest.mark.parametrize("levels", [1, 2, 3, 12])
def test_ks_matches_scipy_with_ties(levels: int) -> None:
    rng = np.random.default_rng(levels)
    for n1, n2 in [(40, 40), (57, 33), (3000, 12_000)]:
        a = rng.integers(0, levels, size=n1).astype(float)
        b = rng.integers(0, levels + 1, size=n2).astype(float)
        result = ks_test(NumericReference.prepare(a), b)
        assert tuple(result) == _scipy_ks(a, b)


@settings(max_examples=80)
@given(
    a=st.lists(finite_floats | st.sampled_from([0.0, 1.0, 2.0]), min_size=1, max_size=60),
    b=st.lists(finite_floats | st.sampled_from([0.0, 1.0, 2.0]), min_size=1, max_size=60),
)
def test_ks_and_wasserstein_match_scipy(a: list[float], b: list[float]) -> None:
    reference = NumericReference.prepare(a)
    result = ks_test(reference, b)
    assert result == pytest.approx(_scipy_ks(np.array(a), np.array(b)), rel=1e-9, abs=1e-12)
    assert 0.0 <= result.p_value <= 1.0 and 0.0 <= result.statistic <= 1.0
    w = wasserstein_scaled(reference, b)
    expected = float(stats.wasserstein_distance(a, b)) / reference.scale  # may be inf for a tiny scale
    assert w == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # order of the current window does not matter, and a prepared sample gives the same answer
    shuffled = list(np.random.default_rng(len(b)).permutation(b))
    assert ks_test(reference, shuffled) == result
    ks, scaled = ks_and_wasserstein(reference, NumericSample.from_values(b))
    assert ks == result and scaled == pytest.approx(w, rel=1e-12, abs=1e-15)


tied_values = st.lists(st.integers(0, 4).map(float), min_size=1, max_size=80)
mixed_values = st.lists(st.integers(0, 6).map(float) | finite_floats, min_size=1, max_size=80)


@settings(max_examples=150)
@given(a=tied_values | mixed_values, b=tied_values | mixed_values)
def test_ks_is_bit_identical_to_scipy(a: list[float], b: list[float]) -> None:
    # not approx: the statistic and the p-value are SciPy's own floats, ties or not
    reference = NumericReference.prepare(a)
    assert tuple(ks_test(reference, b)) == _scipy_ks(np.array(a), np.array(b))
    assert tuple(ks_test(reference, a)) == _scipy_ks(np.array(a), np.array(a)) == (0.0, 1.0)


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n1=st.integers(1, 3000),
    n2=st.integers(1, 3000),
    levels=st.sampled_from([1, 2, 5, 50, 0]),
)
def test_ks_and_wasserstein_at_random_sizes(seed: int, n1: int, n2: int, levels: int) -> None:
    # heavy ties (few levels), continuous values (levels 0), sizes coprime or multiples
    rng = np.random.default_rng(seed)
    a: np.ndarray
    b: np.ndarray
    if levels:
        a = rng.integers(0, levels, size=n1).astype(float)
        b = rng.integers(0, levels, size=n2).astype(float) + rng.integers(0, 2)
    else:
        a, b = rng.normal(size=n1), rng.normal(0.2, size=n2)
    reference = NumericReference.prepare(a)
    ks, scaled = ks_and_wasserstein(reference, NumericSample.from_values(b))
    assert tuple(ks) == _scipy_ks(a, b)
    expected = float(stats.wasserstein_distance(a, b)) / reference.scale
    assert scaled == pytest.approx(expected, rel=1e-9, abs=1e-12)
    same = NumericSample.from_values(rng.permutation(a))
    assert ks_and_wasserstein(reference, same) == ((0.0, 1.0), 0.0)


@pytest.mark.parametrize(("n1", "n2"), [(7, 3), (3, 7), (6, 4), (4, 6), (5, 10), (10, 5), (1, 9), (9, 1)])
def test_wasserstein_by_quantile_steps_matches_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 31 + n2)
    a, b = rng.exponential(size=n1), rng.exponential(1.5, size=n2)
    expected = stats.wasserstein_distance(a, b) / NumericReference.prepare(a).scale
    assert wasserstein_scaled(NumericReference.prepare(a), b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("levels", [0, 3, 300])
def test_block_search_equals_searchsorted(levels: int) -> None:
    # keys tied across block boundaries, keys outside the reference on both sides
    rng = np.random.default_rng(levels)
    ref = np.sort(rng.integers(0, levels, 50_000).astype(float) if levels else rng.normal(size=50_000))
    keys = np.sort(
        np.concatenate([rng.integers(-1, levels + 2, 40_001) if levels else rng.normal(size=40_001)])
    )
    assert np.array_equal(_search_sorted_keys(ref, keys.astype(float)), ref.searchsorted(keys, "right"))


def test_ks_does_not_resort_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    reference = NumericReference.prepare(rng.normal(size=20_000))
    current = rng.normal(size=30)
    sizes: list[int] = []
    real_sort = np.sort

    def spy(array: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        sizes.append(np.asarray(array).size)
        return real_sort(array, *args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(np, "sort", spy)
    ks_test(reference, current)
    wasserstein_scaled(reference, current)
    assert sizes and max(sizes) == 30


def test_identical_samples_show_no_difference() -> None:
    values = np.random.default_rng(3).gamma(2.0, size=500)
    reference = NumericReference.prepare(values)
    assert ks_test(reference, values) == (0.0, 1.0)
    assert wasserstein_scaled(reference, values) == 0.0
    assert psi(reference, values) == pytest.approx(0.0, abs=1e-15)
    assert js_distance_numeric(reference, values) == pytest.approx(0.0, abs=1e-7)


def test_ks_rejects_empty_current() -> None:
    reference = NumericReference.prepare([1.0, 2.0])
    with pytest.raises(ValueError):
        ks_test(reference, [np.nan])
    with pytest.raises(ValueError):
        wasserstein_scaled(reference, [])


# --------------------------------------------------------------------------- Wasserstein, PSI, JS


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (10, 3), (1000, 1000), (5000, 20_000), (70_001, 150_000)])
def test_wasserstein_matches_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n2)
    a, b = rng.exponential(size=n1), rng.exponential(1.2, size=n2).round(1)
    reference = NumericReference.prepare(a)
    expected = stats.wasserstein_distance(a, b) / reference.scale
    assert wasserstein_scaled(reference, b) == pytest.approx(expected, rel=1e-9)


def test_wasserstein_of_a_shift_is_the_shift_in_standard_deviations() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(10, 3, size=200_000)
    reference = NumericReference.prepare(base)
    assert wasserstein_scaled(reference, base + 0.3) == pytest.approx(0.1, rel=0.01)


def test_psi_by_hand() -> None:
    reference = NumericReference.prepare(np.arange(100.0), bins=4)
    current = np.concatenate([np.full(50, 10.0), np.full(50, 90.0)])  # bins 1 and 4 only
    counts = bin_counts(reference, current)
    assert list(reference.counts) == [25, 25, 25, 25] and list(counts) == [50, 0, 0, 50]
    eps, k = 1e-4, 4
    r = (np.full(4, 0.25) + eps) / (1 + k * eps)
    c = (np.array([0.5, 0, 0, 0.5]) + eps) / (1 + k * eps)
    assert psi(reference, current) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert psi_from_counts([25, 25, 25, 25], [50, 0, 0, 50], smoothing=0.0) == math.inf
    assert psi_from_counts([25, 0, 25], [50, 0, 50], smoothing=0.0) == pytest.approx(0.0)


@settings(max_examples=60)
@given(
    counts=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=12).filter(
        lambda c: sum(x for x, _ in c) > 0 and sum(y for _, y in c) > 0
    )
)
def test_js_distance_matches_scipy_and_is_bounded(counts: list[tuple[int, int]]) -> None:
    ref = np.array([c[0] for c in counts], dtype=float)
    cur = np.array([c[1] for c in counts], dtype=float)
    with np.errstate(all="ignore"):
        expected = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
    value = js_distance_from_counts(ref, cur)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(expected, abs=1e-7)
    assert js_distance_from_counts(cur, ref) == pytest.approx(value, abs=1e-12)
    assert psi_from_counts(ref, cur) >= 0.0
    assert psi_from_counts(ref, cur) == pytest.approx(psi_from_counts(cur, ref), rel=1e-9)


def test_js_distance_disjoint_is_one() -> None:
    assert js_distance_from_counts([5, 0], [0, 7]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ref", "cur", "smoothing"),
    [([1, 2], [1], 1e-4), ([0, 0], [1, 1], 1e-4), ([1, -1], [1, 1], 1e-4), ([1, 1], [1, 1], -1.0)],
)
def test_counts_rejected(ref: list[float], cur: list[float], smoothing: float) -> None:
    with pytest.raises(ValueError):
        psi_from_counts(ref, cur, smoothing)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 400))
def test_seeded_draws_are_reproducible(seed: int, n: int) -> None:
    def run() -> tuple[float, ...]:
        rng = np.random.default_rng(seed)
        reference = NumericReference.prepare(rng.normal(size=n))
        current = rng.normal(size=n)
        return (*ks_test(reference, current), wasserstein_scaled(reference, current), psi(reference, current))

    assert run() == run()
