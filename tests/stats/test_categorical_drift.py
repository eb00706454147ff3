"""Categorical drift: chi-square against SciPy's chi2_contingency, JS, PSI, new categories."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.stats import (
    chi_square_test,
    js_distance_categorical,
    new_categories,
    psi_categorical,
)

counts_strategy = st.dictionaries(
    st.sampled_from(list("abcdefg")), st.integers(0, 500), min_size=1, max_size=7
)


def _scipy(ref: Mapping[str, float], cur: Mapping[str, float]) -> tuple[float, float, int]:
    keys = sorted(k for k in set(ref) | set(cur) if ref.get(k, 0) > 0 or cur.get(k, 0) > 0)
    table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]], dtype=float)
    result = stats.chi2_contingency(table)  # default correction=True: Yates only when dof == 1
    return float(result.statistic), float(result.pvalue), int(result.dof)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ({"a": 10, "b": 20}, {"a": 30, "b": 5}),  # 2x2: Yates' correction applies
        ({"a": 10, "b": 20}, {"a": 10, "b": 20}),
        ({"a": 3, "b": 1}, {"a": 2, "b": 2}),  # |O - E| < 0.5 somewhere
        ({"en": 500, "de": 300, "fr": 200}, {"en": 480, "de": 350, "fr": 170}),
        ({"x": 5, "y": 0, "z": 7}, {"x": 1, "y": 0, "z": 9, "w": 0}),  # zero on both sides dropped
        ({"a": 2.5, "b": 7.25}, {"a": 4.0, "b": 1.5}),  # weighted, non-integer counts
    ],
)
def test_chi_square_matches_scipy(ref: dict[str, float], cur: dict[str, float]) -> None:
    result = chi_square_test(ref, cur)
    expected = _scipy(ref, cur)
    assert result.statistic == pytest.approx(expected[0], rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(expected[1], rel=1e-9, abs=1e-12)
    assert result.dof == expected[2]


@settings(max_examples=80)
@given(ref=counts_strategy, cur=counts_strategy)
def test_chi_square_matches_scipy_property(ref: dict[str, int], cur: dict[str, int]) -> None:
    if sum(ref.values()) == 0 or sum(cur.values()) == 0:
        with pytest.raises(ValueError):
            chi_square_test(ref, cur)
        return
    result = chi_square_test(ref, cur)
    assert 0.0 <= result.p_value <= 1.0
    if result.dof == 0:
        assert tuple(result) == (0.0, 1.0, 0)
    else:
        assert tuple(result) == pytest.approx(_scipy(ref, cur), rel=1e-9, abs=1e-12)
    # independent of the order the categories come in
    reordered = dict(reversed(list(cur.items())))
    assert chi_square_test(ref, reordered) == pytest.approx(tuple(result), rel=1e-12, abs=1e-15)
    js = js_distance_categorical(ref, cur)
    assert 0.0 <= js <= 1.0
    assert psi_categorical(ref, cur) >= 0.0


def test_single_category_is_zero_dof_like_scipy() -> None:
    assert chi_square_test({"a": 5}, {"a": 9}) == (0.0, 1.0, 0)
    assert _scipy({"a": 5}, {"a": 9}) == (0.0, 1.0, 0)


@pytest.mark.parametrize(
    ("ref", "cur"), [({"a": 0}, {"a": 3}), ({}, {"a": 3}), ({"a": 1}, {"a": -1}), ({"a": math.nan}, {"a": 1})]
)
def test_chi_square_rejects(ref: dict[str, float], cur: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        chi_square_test(ref, cur)


def test_identical_shares_show_no_drift() -> None:
    ref = {"accepted": 800, "edited": 140, "ignored": 60}
    cur = {k: v * 3 for k, v in ref.items()}
    assert js_distance_categorical(ref, cur) == pytest.approx(0.0, abs=1e-7)
    assert psi_categorical(ref, cur) == pytest.approx(0.0, abs=1e-12)
    assert chi_square_test(ref, cur).p_value == pytest.approx(1.0)


def test_new_categories_by_name_most_frequent_first() -> None:
    ref = {"en": 100, "de": 50, "it": 0}
    cur = {"en": 90, "pt": 3, "es": 20, "it": 4, "zz": 0}
    assert new_categories(ref, cur) == ("es", "it", "pt")
    assert new_categories(cur, ref) == ("de",)
    assert new_categories(ref, ref) == ()


def test_psi_of_a_new_category_is_large_but_finite() -> None:
    value = psi_categorical({"a": 100}, {"a": 80, "b": 20})
    assert math.isfinite(value) and value > 1.0
