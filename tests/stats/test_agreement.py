"""Cohen's kappa against statsmodels and published worked examples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa  # type: ignore[import-untyped]

from monitor.stats import cohens_kappa


def _ratings_from_table(table: list[list[int]], labels: list[str]) -> tuple[list[str], list[str]]:
    a: list[str] = []
    b: list[str] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [labels[i]] * count
            b += [labels[j]] * count
    return a, b


def test_sas_proc_freq_example() -> None:
    # SAS/STAT User's Guide, PROC FREQ, "Output 3.12.2 Agreement Study" (as reproduced in
    # statsmodels' tests): Kappa 0.4842, ASE 0.1380, 95 % limits 0.2137 to 0.7547.
    a, b = _ratings_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]], ["x", "y", "z"])
    result = cohens_kappa(a, b)
    assert round(result.kappa, 4) == 0.4842
    assert round(result.std_error, 4) == 0.1380
    assert (round(result.low, 4), round(result.high, 4)) == (0.2137, 0.7547)
    assert result.n == 19
    assert result.raw_agreement == pytest.approx(13 / 19)


def test_textbook_two_by_two() -> None:
    # The standard illustration (e.g. the "Cohen's kappa" entry of Wikipedia, after Cohen 1960):
    # 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a, b = _ratings_from_table([[20, 5], [10, 15]], ["yes", "no"])
    result = cohens_kappa(a, b)
    assert result.raw_agreement == pytest.approx(0.7)
    assert result.kappa == pytest.approx(0.4)


@settings(max_examples=60)
@given(
    pairs=st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), min_size=2, max_size=80),
)
def test_matches_statsmodels(pairs: list[tuple[str, str]]) -> None:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    labels = sorted(set(a) | set(b))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in pairs:
        table[index[x], index[y]] += 1
    result = cohens_kappa(a, b)  # statsmodels' KappaResults use 95 % limits
    if len(labels) == 1:
        assert math.isnan(result.kappa) and math.isnan(result.low) and math.isnan(result.high)
        assert result.raw_agreement == 1.0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own std may hit sqrt(-tiny) on degenerate tables
        expected = sm_kappa(table)
    assert result.kappa == pytest.approx(expected.kappa, abs=1e-12)
    # compare variances: near 0 the square root turns rounding residue (1e-17) into 1e-9
    assert result.std_error**2 == pytest.approx(max(expected.var_kappa, 0.0), abs=1e-12)
    if np.isfinite(expected.std_kappa):
        assert result.low == pytest.approx(expected.kappa_low, abs=1e-7)
        assert result.high == pytest.approx(expected.kappa_upp, abs=1e-7)
    assert result.low <= result.kappa <= result.high


def test_confidence_level_widens() -> None:
    a, b = _ratings_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]], ["x", "y", "z"])
    narrow, wide = cohens_kappa(a, b, confidence=0.8), cohens_kappa(a, b, confidence=0.99)
    assert wide.low < narrow.low < narrow.kappa < narrow.high < wide.high
    assert wide.high - wide.kappa == pytest.approx(2.5758293035489 * wide.std_error)


def test_degenerate_single_category_is_nan_without_warnings() -> None:
    result = cohens_kappa(["pass"] * 10, ["pass"] * 10)
    assert math.isnan(result.kappa) and math.isnan(result.std_error)
    assert result.raw_agreement == 1.0 and result.n == 10


def test_perfect_agreement() -> None:
    result = cohens_kappa(["pass", "fail", "pass"], ["pass", "fail", "pass"])
    assert result.kappa == 1.0 and result.std_error == 0.0


@pytest.mark.parametrize(("a", "b"), [([], []), (["x"], ["x", "y"])])
def test_rejects_bad_input(a: list[str], b: list[str]) -> None:
    with pytest.raises(ValueError):
        cohens_kappa(a, b)
