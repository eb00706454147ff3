"""Drift verdicts: significance after Benjamini-Hochberg AND an effect size, over one comparison."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import (
    DriftMeasurement,
    DriftThresholds,
    NumericReference,
    benjamini_hochberg,
    compare_categorical,
    compare_numeric,
    decide,
)
from monitor.stats.drift_result import MIN_SAMPLES, untested

CONTRACT_KEYS = {"signal", "kind", "test", "statistic", "p_value", "effect", "drifted"}

# The thresholds these tests were written for (the configuration sets the daemon's: monitor.config).
THRESHOLDS = DriftThresholds(alpha=0.001, numeric_effect=0.1, categorical_effect=0.05, psi_effect=0.2)


def _primary(signal: str, p: float, effect: float, kind: str = "numeric") -> DriftMeasurement:
    test = "ks" if kind == "numeric" else "chi2"
    return DriftMeasurement(signal, kind, test, 0.5, p, effect, "e", 100, 100, True)  # type: ignore[arg-type]


def test_verdict_needs_both_significance_and_effect() -> None:
    results = decide(
        [
            _primary("significant-and-big", 1e-9, 0.5),
            _primary("significant-but-tiny", 1e-9, 0.01),
            _primary("big-but-noise", 0.2, 0.9),
            _primary("category-big", 1e-6, 0.2, "categorical"),
            _primary("category-small", 1e-6, 0.02, "categorical"),
        ],
        THRESHOLDS,
    )
    assert [r.drifted for r in results] == [True, False, False, True, False]


def test_benjamini_hochberg_is_applied_across_the_family() -> None:
    p = [0.004, 0.02, 0.03, 0.04, 0.5]
    results = decide([_primary(f"s{i}", v, 1.0) for i, v in enumerate(p)], replace(THRESHOLDS, alpha=0.05))
    rejected, adjusted = benjamini_hochberg(p, 0.05)
    assert [r.drifted for r in results] == rejected.tolist() == [True, True, True, True, False]
    assert [r.p_value_adjusted for r in results] == pytest.approx(adjusted.tolist())
    # alone, 0.04 passes at 0.05; in a family of 20 with nothing else significant it does not
    family = [_primary("x", 0.04, 1.0)] + [_primary(f"n{i}", 0.9, 1.0) for i in range(19)]
    assert not decide(family, replace(THRESHOLDS, alpha=0.05))[0].drifted


def test_secondary_entries_are_gated_by_their_primary() -> None:
    rng = np.random.default_rng(0)
    reference = NumericReference.prepare(rng.normal(size=30))
    # A few values: PSI and JS over deciles look large by chance, but KS is not significant.
    small = compare_numeric("few", reference, rng.normal(size=8))
    assert [m.test for m in small] == ["ks", "wasserstein", "psi", "js"]
    assert [m.primary for m in small] == [True, False, False, False]
    assert all(m.p_value is None for m in small[1:])
    results = decide(small, THRESHOLDS)
    assert results[2].effect > THRESHOLDS.psi_effect  # would be a false alarm if ungated
    assert not any(r.drifted for r in results)
    shifted = decide(compare_numeric("shifted", reference, rng.normal(3.0, size=40)), THRESHOLDS)
    assert all(r.drifted for r in shifted)


def test_untested_entries_never_drift_and_serialise_as_null() -> None:
    entry = untested("signals.gone", "numeric", 500, 0)
    (result,) = decide([entry, _primary("other", 1e-9, 1.0)], THRESHOLDS)[:1]
    assert result.p_value is None and not result.drifted
    payload = result.to_json()
    assert payload.keys() >= CONTRACT_KEYS
    assert payload["statistic"] is None and payload["effect"] is None and payload["n_current"] == 0
    json.dumps(payload, allow_nan=False)


@pytest.mark.parametrize("n", range(MIN_SAMPLES))
def test_too_small_samples_are_untested(n: int) -> None:
    reference = NumericReference.prepare([1.0, 2.0, 3.0])
    (entry,) = compare_numeric("tiny", reference, [5.0] * n)
    assert entry.p_value is None and math.isnan(entry.effect) and entry.n_current == n
    (entry,) = compare_categorical("tag", {"a": 5}, {"b": 1} if n else {})
    assert entry.p_value is None and entry.test == "chi2"
    assert entry.new_categories == (("b",) if n else ())


def test_categorical_entries() -> None:
    results = decide(
        compare_categorical(
            "user_action",
            {"accepted": 800, "rejected": 200},
            {"accepted": 500, "rejected": 480, "retried": 20},
        ),
        THRESHOLDS,
    )
    assert [r.test for r in results] == ["chi2", "js", "psi"]
    assert all(r.drifted for r in results)
    assert results[0].new_categories == ("retried",)
    payload = results[0].to_json()
    assert payload["kind"] == "categorical" and payload["new_categories"] == ["retried"]


def test_thresholds_validate_and_map_tests() -> None:
    thresholds = THRESHOLDS
    assert (thresholds.for_test("ks"), thresholds.for_test("chi2"), thresholds.for_test("psi")) == (
        0.1,
        0.05,
        0.2,
    )
    assert thresholds.for_test("wasserstein") == 0.1 and thresholds.for_test("js") == 0.05
    with pytest.raises(ValueError):
        thresholds.for_test("t-test")
    for bad in ({"alpha": 0.0}, {"alpha": 1.0}, {"numeric_effect": -1.0}, {"psi_effect": math.nan}):
        with pytest.raises(ValueError):
            replace(THRESHOLDS, **bad)


@settings(max_examples=40)
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=MIN_SAMPLES, max_size=200),
    counts=st.dictionaries(
        st.sampled_from(list("abcde")), st.integers(MIN_SAMPLES, 300), min_size=1, max_size=5
    ),
)
def test_identical_samples_never_drift(values: list[float], counts: dict[str, int]) -> None:
    reference = NumericReference.prepare(values)
    measurements = compare_numeric("x", reference, values) + compare_categorical("t", counts, counts)
    results = decide(measurements, THRESHOLDS)
    assert not any(r.drifted for r in results)
    for r in results:
        assert r.p_value is None or 0.0 <= r.p_value <= 1.0
        assert r.effect == pytest.approx(0.0, abs=1e-6)
        json.dumps(r.to_json(), allow_nan=False)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1))
def test_results_independent_of_current_order_and_reproducible(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = NumericReference.prepare(rng.normal(size=300))
    current = rng.normal(0.4, size=200)
    first = decide(compare_numeric("x", reference, current), THRESHOLDS)
    again = decide(compare_numeric("x", reference, current[::-1].copy()), THRESHOLDS)
    assert first == again
    rng2 = np.random.default_rng(seed)
    reference2 = NumericReference.prepare(rng2.normal(size=300))
    assert decide(compare_numeric("x", reference2, rng2.normal(0.4, size=200)), THRESHOLDS) == first
