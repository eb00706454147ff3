"""Benjamini-Hochberg against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests  # type: ignore[import-untyped]

from monitor.stats import benjamini_hochberg


@settings(max_examples=100)
@given(
    p=st.lists(st.floats(0, 1) | st.sampled_from([0.0, 0.01, 0.05, 1.0]), min_size=1, max_size=40),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.3]),
)
def test_matches_statsmodels(p: list[float], alpha: float) -> None:
    rejected, adjusted = benjamini_hochberg(p, alpha)
    expected_rejected, expected_adjusted, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
    assert rejected.tolist() == expected_rejected.tolist()
    np.testing.assert_allclose(adjusted, expected_adjusted, rtol=1e-12, atol=0)
    assert np.all((adjusted >= np.asarray(p)) & (adjusted <= 1.0))
    order = np.random.default_rng(len(p)).permutation(len(p))
    shuffled_rejected, shuffled_adjusted = benjamini_hochberg(np.asarray(p)[order], alpha)
    assert shuffled_rejected.tolist() == rejected[order].tolist()
    np.testing.assert_allclose(shuffled_adjusted, adjusted[order], rtol=1e-12)


def test_textbook_example() -> None:
    # Benjamini & Hochberg (1995), section 4: 15 p-values, q* = 0.05 rejects the four smallest.
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262,
         0.5719, 0.6528, 0.7590, 1.000]  # fmt: skip
    rejected, _ = benjamini_hochberg(p, 0.05)
    assert rejected.tolist() == [True] * 4 + [False] * 11


def test_empty_and_invalid() -> None:
    rejected, adjusted = benjamini_hochberg([], 0.05)
    assert rejected.size == 0 and adjusted.size == 0
    for bad in ([0.5, np.nan], [1.5], [-0.1]):
        with pytest.raises(ValueError):
            benjamini_hochberg(bad, 0.05)
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1], 0.0)
